// Package recorder defines warden's recording: the record format, the hash chain with its signed checkpoints, heads and MACs, verification, and the Store interface the stores implement.
package recorder
