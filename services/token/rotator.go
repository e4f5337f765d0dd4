package token

import (
	"context"
	"database/sql"
	"time"

	"github.com/authplane/authplane/pkg/db"
)

// rotator commits refresh-token rotations in groups. Each rotation is a few small statements; what costs is the
// transaction around them: on SQLite its commit writes the touched pages to the WAL and the single writer makes
// every other rotation wait, on PostgreSQL its begin and commit are round trips and a WAL flush. So rotations
// queue, and a worker runs whatever has queued (up to maxRotationBatch) in one transaction: under load many share
// one commit, alone one still commits at once. Nothing is made weaker: each rotation runs the same statements as on
// its own, and concurrent uses of one token are still ordered by its row (the claim), so exactly one rotates it
// and the others see it spent.
type rotator struct {
	store *store
	queue chan *rotationJob
}

// rotationJob is one rotation waiting for its group's commit.
type rotationJob struct {
	ctx     context.Context
	use     *refreshUse
	out     *rotated
	outcome error // this rotation's own answer (invalid, reused, refused), final once the group commits
	done    chan struct{}
}

const (
	// maxRotationBatch bounds a group, and so the work one failed transaction undoes and the wait behind it.
	maxRotationBatch = 64
	// rotationTimeout bounds a group's transaction, which runs detached from the requests that joined it.
	rotationTimeout = 10 * time.Second
)

// newRotator starts the workers: one on SQLite (one writer at a time is its model), several on PostgreSQL, whose
// groups commit in parallel on their own connections.
func newRotator(s *store) *rotator {
	workers := 1
	if s.db.Dialect == db.Postgres {
		workers = 6
	}
	r := &rotator{store: s, queue: make(chan *rotationJob, 4*maxRotationBatch)}
	for range workers {
		go r.work()
	}
	return r
}

// rotate queues a rotation and waits for its group's commit.
func (r *rotator) rotate(ctx context.Context, u *refreshUse) (*rotated, error) {
	job := &rotationJob{ctx: ctx, use: u, done: make(chan struct{})}
	select {
	case r.queue <- job:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-job.done // even if ctx ends: the rotation may be committed, and its answer must not be lost
	return job.out, job.outcome
}

func (r *rotator) work() {
	batch := make([]*rotationJob, 0, maxRotationBatch)
	for job := range r.queue {
		batch = append(batch[:0], job)
	drain:
		for len(batch) < maxRotationBatch {
			select {
			case j := <-r.queue:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		r.commit(batch)
	}
}

// commit runs a group in one transaction. Rotations whose requests have gone are left out before it starts; a
// database error fails every rotation of the group, none of which then took effect.
func (r *rotator) commit(batch []*rotationJob) {
	defer func() {
		for _, j := range batch {
			close(j.done)
		}
	}()
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.outcome = err
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rotationTimeout)
	defer cancel()
	st, err := r.store.rotation(ctx)
	if err == nil {
		err = r.store.db.RawTx(ctx, func(tx *sql.Tx) error {
			for _, j := range live {
				out, outcome, failed := rotateOne(ctx, tx, st, j.use)
				if failed != nil {
					return failed
				}
				j.out, j.outcome = out, outcome
			}
			return nil
		})
	}
	if err != nil {
		for _, j := range live {
			j.out, j.outcome = nil, err
		}
	}
}
