// Package mask keeps sensitive values out of tool results and the recording: column rules by provenance, value detectors as a backstop.
package mask
