package sql

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/warden-mcp/warden"
)

// Estimate implements warden.Estimator: the planner's estimate of how many
// rows the statement reads or writes, from EXPLAIN (FORMAT JSON) inside
// BEGIN READ ONLY, so nothing the statement does takes effect. For writes
// it is the estimate of the rows fed to the write (PostgreSQL reports 0
// for the write node itself); for a data-modifying CTE, the largest such
// estimate in the plan. DDL, TRUNCATE and EXPLAIN have no estimate.
func (q *Query) Estimate(ctx context.Context, a *warden.Action) (int64, bool, error) {
	p, ok := a.Plan.(*queryPlan)
	if !ok {
		return 0, false, errors.New("sql_query: action carries no plan")
	}
	if p.refusal != nil {
		return 0, false, nil // the call is refused when it executes; nothing to estimate
	}
	switch a.Kind {
	case warden.VerbSelect, warden.VerbInsert, warden.VerbUpdate, warden.VerbDelete, warden.VerbMerge:
	default:
		return 0, false, nil
	}
	n, err := p.backend.estimate(ctx, p)
	if err != nil {
		return 0, false, err
	}
	return n, true, nil
}

func (b *Backend) estimate(ctx context.Context, p *queryPlan) (int64, error) {
	conn, release, err := b.acquire(ctx, p)
	if err != nil {
		return 0, err
	}
	defer release()
	batch := &pgx.Batch{}
	batch.Queue("BEGIN READ ONLY")
	// The statement, not its row-limited form: a rule on rows read must
	// see the query's own estimate, not one capped at max_rows.
	batch.Queue("EXPLAIN (FORMAT JSON) "+p.statement, p.params...)
	batch.Queue("ROLLBACK")
	br := conn.SendBatch(ctx, batch)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return 0, b.queryError(ctx, err)
	}
	var out []byte
	if err := br.QueryRow().Scan(&out); err != nil {
		return 0, b.queryError(ctx, err)
	}
	if _, err := br.Exec(); err != nil {
		return 0, b.queryError(ctx, err)
	}
	var plans []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		return 0, warden.Errorf(warden.Internal, "EXPLAIN returned an unexpected plan")
	}
	return plans[0].Plan.estimate(), nil
}

type planNode struct {
	NodeType string     `json:"Node Type"`
	Rows     float64    `json:"Plan Rows"`
	Plans    []planNode `json:"Plans"`
}

// estimate is the node's rows, or, for the largest write anywhere below,
// the rows its input produces.
func (n *planNode) estimate() int64 {
	best := n.Rows
	var walk func(*planNode)
	walk = func(m *planNode) {
		if m.NodeType == "ModifyTable" && len(m.Plans) > 0 {
			best = max(best, m.Plans[0].Rows)
		}
		for i := range m.Plans {
			walk(&m.Plans[i])
		}
	}
	walk(n)
	return int64(best)
}

var _ warden.Estimator = (*Query)(nil)
