// Package mask keeps sensitive values out of tool results and the recording: column rules (applied in SQL by tools/sql), value detectors as a backstop.
package mask
