package mask

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// resultCells returns a 1,000-row × 10-column text result, as a SQL or
// HTTP tool would return it, with an email in one row in withPII and a
// card in one row in 2×withPII (0: no sensitive values at all).
func resultCells(withPII int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra", "Barbara Liskov", "José Álvarez", "Zoë Müller"}
	cities := []string{"London", "Zürich", "New York", "São Paulo", "Tokyo", "Berlin", "Paris", "Nairobi"}
	statuses := []string{"shipped", "pending", "cancelled", "refunded", "delivered"}
	notes := []string{"", "Leave at the door", "Call before delivery: +1 415 555 2671", "gift wrap, no invoice", "customer asked about order ORD-2023-118842"}
	var cells []string
	for i := range 1000 {
		contact := fmt.Sprintf("+44 20 7946 %04d", r.IntN(10000))
		if withPII > 0 && i%withPII == 0 {
			contact = fmt.Sprintf("customer%d@example.com", i)
		}
		if withPII > 0 && i%(2*withPII) == 1 {
			contact = "card 4111 1111 1111 1111"
		}
		cells = append(cells,
			fmt.Sprint(100000+i),
			fmt.Sprintf("ORD-2024-%06d", r.IntN(1000000)),
			names[r.IntN(len(names))],
			cities[r.IntN(len(cities))],
			fmt.Sprintf("%d.%02d", r.IntN(5000), r.IntN(100)),
			statuses[r.IntN(len(statuses))],
			fmt.Sprintf("2024-%02d-%02d %02d:%02d:%02d", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60)),
			fmt.Sprint(1700000000000+r.Int64N(100000000000)), // updated_at, Unix milliseconds
			contact,
			notes[r.IntN(len(notes))],
		)
	}
	return cells
}

func BenchmarkScrub(b *testing.B) {
	d := mustDetectors(b, Config{Detectors: allKinds})
	for _, bc := range []struct {
		name    string
		withPII int
	}{
		{"NoMatches", 0},
		{"WithMatches", 5}, // 20% of rows hold an email, 10% a card
	} {
		b.Run(bc.name, func(b *testing.B) {
			cells := resultCells(bc.withPII)
			total := 0
			for _, c := range cells {
				total += len(c)
			}
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				for _, c := range cells {
					d.Scrub(c)
				}
			}
		})
	}
}

// BenchmarkScrubJSON scrubs the same result encoded as the pipeline sees
// it: one JSON document with rows of cells.
func BenchmarkScrubJSON(b *testing.B) {
	d := mustDetectors(b, Config{Detectors: allKinds})
	for _, bc := range []struct {
		name    string
		withPII int
	}{
		{"NoMatches", 0},
		{"WithMatches", 5},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cells := resultCells(bc.withPII)
			var rows [][]string
			for i := 0; i < len(cells); i += 10 {
				rows = append(rows, cells[i:i+10])
			}
			raw, err := json.Marshal(map[string]any{"columns": []string{"id", "order", "name", "city", "amount", "status", "created_at", "updated_ms", "contact", "note"}, "rows": rows})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := d.ScrubJSON(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScrubLayers scrubs values that hold encoded layers: ConfigMap
// binaryData-like base64 values, and a Helm release (base64 of gzip of
// JSON whose manifest is YAML), none of which holds a finding, so every
// layer is decoded and scanned to the end.
func BenchmarkScrubLayers(b *testing.B) {
	d := mustDetectors(b, Config{Detectors: allKinds})
	cells := resultCells(0)
	var blobs []string
	for i := 0; i+10 <= len(cells); i += 10 {
		blobs = append(blobs, base64.StdEncoding.EncodeToString([]byte(strings.Join(cells[i:i+10], "\n"))))
	}
	var manifest strings.Builder
	for i := range 200 {
		fmt.Fprintf(&manifest, "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-%d\n  labels: {app: web, tier: frontend}\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx@sha256:3b5e4a8f1c2d9e0b7a6f5c4d3e2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09\n        args: [--port=8080, --log-level=info]\n        env:\n        - {name: LOG_LEVEL, value: debug}\n", i)
	}
	release, err := json.Marshal(map[string]any{"name": "web", "version": 7, "manifest": manifest.String(), "info": map[string]any{"status": "deployed"}})
	if err != nil {
		b.Fatal(err)
	}
	var gzipped bytes.Buffer
	w := gzip.NewWriter(&gzipped)
	_, _ = w.Write(release)
	_ = w.Close()
	helm := base64.StdEncoding.EncodeToString(gzipped.Bytes())
	for _, bc := range []struct {
		name   string
		values []string
	}{
		{"Base64Values", blobs},
		{"HelmRelease", []string{helm}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			total := 0
			for _, v := range bc.values {
				total += len(v)
			}
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				for _, v := range bc.values {
					if _, fired := d.Scrub(v); fired != nil {
						b.Fatalf("Scrub fired %q", fired)
					}
				}
			}
		})
	}
}
