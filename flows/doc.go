// Package flows is the flow-control stage: it remembers keyed fingerprints of what each caller read from a rule's source and refuses (or holds) calls that would carry any of it to the rule's sink, and it caps what a role may read per window.
package flows
