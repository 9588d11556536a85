package mask

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
