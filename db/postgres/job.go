package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"fieldhub/db"
	"fieldhub/storage"
)

// The jobs of package jobs, as db/job.go keeps them in SQLite; the suite
// db/storetest.RunJobs holds the two to the same behaviour.

// CreateJob stores a new job, scheduled.
func (s *Store) CreateJob(ctx context.Context, j db.Job) (db.Job, error) {
	j.Status, j.CreatedAt = db.JobScheduled, storage.FromUnixMS(ms(s.Now()))
	j.StartAt = storage.FromUnixMS(ms(j.StartAt))
	_, err := s.pool.Exec(ctx, `INSERT INTO jobs (job_id, type, query, payload, actor, status, max_concurrency,
		device_timeout, created_at, start_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		j.ID, j.Type, j.Query, string(j.Payload), j.Actor, j.Status, j.MaxConcurrency, j.DeviceTimeout.Milliseconds(),
		ms(j.CreatedAt), ms(j.StartAt))
	if err := translate(err); err != nil {
		if err == storage.ErrConflict {
			return db.Job{}, fmt.Errorf("job %q: %w", j.ID, storage.ErrConflict)
		}
		return db.Job{}, fmt.Errorf("create job: %w", err)
	}
	return j, nil
}

// Job reads a job.
func (s *Store) Job(ctx context.Context, id string) (db.Job, error) {
	j, err := db.ScanJob(s.pool.QueryRow(ctx, `SELECT `+db.JobColumns+` FROM jobs WHERE job_id = $1`, id))
	if err := translate(err); err != nil {
		return db.Job{}, fmt.Errorf("job %q: %w", id, err)
	}
	return j, nil
}

func (s *Store) queryJobs(ctx context.Context, q string, args ...any) ([]db.Job, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []db.Job
	for rows.Next() {
		j, err := db.ScanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Jobs lists jobs, newest first.
func (s *Store) Jobs(ctx context.Context, f db.JobFilter) ([]db.Job, error) {
	q, args := `SELECT `+db.JobColumns+` FROM jobs`, []any{}
	if f.Status != "" {
		q += ` WHERE status = $1`
		args = append(args, f.Status)
	}
	q += ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.queryJobs(ctx, q, args...)
}

// ActiveJobs are the jobs scheduled or running, oldest first.
func (s *Store) ActiveJobs(ctx context.Context) ([]db.Job, error) {
	return s.queryJobs(ctx, `SELECT `+db.JobColumns+` FROM jobs WHERE status IN ('scheduled', 'running') ORDER BY start_at, id`)
}

// jobKey locks a job's row in tx and returns its key and status.
func jobKey(ctx context.Context, tx pgx.Tx, id string) (int64, string, error) {
	var key int64
	var status string
	err := tx.QueryRow(ctx, `SELECT id, status FROM jobs WHERE job_id = $1 FOR UPDATE`, id).Scan(&key, &status)
	return key, status, translate(err)
}

// StartJob records that a scheduled job started on these devices.
func (s *Store) StartJob(ctx context.Context, id string, deviceIDs []string) (db.Job, error) {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		key, status, err := jobKey(ctx, tx, id)
		if err != nil {
			return err
		}
		if status != db.JobScheduled {
			return fmt.Errorf("job is %s, not scheduled: %w", status, storage.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO job_devices (job, device_id, status)
			SELECT $1, d, 'pending' FROM unnest($2::text[]) AS d ON CONFLICT DO NOTHING`, key, deviceIDs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET status = 'running', started_at = $1,
			total = (SELECT COUNT(*) FROM job_devices WHERE job = $2) WHERE id = $2`, ms(s.Now()), key)
		return err
	})
	if err != nil {
		return db.Job{}, fmt.Errorf("start job %q: %w", id, err)
	}
	return s.Job(ctx, id)
}

// ClaimJobDevices marks up to n pending devices of a running job running.
func (s *Store) ClaimJobDevices(ctx context.Context, id string, n int) ([]string, error) {
	var out []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE job_devices SET status = 'running', started_at = $1
			WHERE (job, device_id) IN (SELECT jd.job, jd.device_id FROM job_devices jd JOIN jobs j ON j.id = jd.job
				WHERE j.job_id = $2 AND j.status = 'running' AND jd.status = 'pending'
				ORDER BY jd.device_id COLLATE "C" LIMIT $3 FOR UPDATE OF jd SKIP LOCKED)
			RETURNING device_id`, ms(s.Now()), id, n)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim devices of job %q: %w", id, err)
	}
	sortBytes(out)
	return out, nil
}

func sortBytes(ids []string) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// FinishJobDevice records a device's outcome and counts it in the job.
func (s *Store) FinishJobDevice(ctx context.Context, id string, out db.JobDevice) error {
	col := map[string]string{db.JobDeviceSucceeded: "succeeded", db.JobDeviceFailed: "failed", db.JobDeviceCancelled: "cancelled"}[out.Status]
	if col == "" {
		return storage.Invalid("status", "a device's outcome is succeeded, failed or cancelled, not %q", out.Status)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		key, _, err := jobKey(ctx, tx, id)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE job_devices SET status = $1, finished_at = $2, result = $3, error = $4
			WHERE job = $5 AND device_id = $6 AND status IN ('pending', 'running')`,
			out.Status, ms(s.Now()), string(out.Result), out.Error, key, out.DeviceID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("device %q of job %q has an outcome already or is not in it: %w", out.DeviceID, id, storage.ErrConflict)
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET `+col+` = `+col+` + 1 WHERE id = $1`, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish device %q of job %q: %w", out.DeviceID, id, err)
	}
	return nil
}

// FinishJob gives a job its final state; a finished job keeps its own.
func (s *Store) FinishJob(ctx context.Context, id, status, why string) (db.Job, error) {
	if status != db.JobCompleted && status != db.JobFailed {
		return db.Job{}, storage.Invalid("status", "a job finishes completed or failed, not %q", status)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE jobs SET status = $1, error = $2, finished_at = $3
		WHERE job_id = $4 AND status IN ('scheduled', 'running')`, status, why, ms(s.Now()), id); err != nil {
		return db.Job{}, fmt.Errorf("finish job %q: %w", id, err)
	}
	return s.Job(ctx, id)
}

// CancelJob cancels a scheduled or running job and its pending devices.
func (s *Store) CancelJob(ctx context.Context, id string) (db.Job, error) {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		key, status, err := jobKey(ctx, tx, id)
		if err != nil {
			return err
		}
		if status != db.JobScheduled && status != db.JobRunning {
			return fmt.Errorf("job %q is %s already: %w", id, status, storage.ErrConflict)
		}
		now := ms(s.Now())
		tag, err := tx.Exec(ctx, `UPDATE job_devices SET status = 'cancelled', finished_at = $1 WHERE job = $2 AND status = 'pending'`, now, key)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET status = 'cancelled', finished_at = $1, cancelled = cancelled + $2 WHERE id = $3`,
			now, tag.RowsAffected(), key)
		return err
	})
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return db.Job{}, fmt.Errorf("job %q: %w", id, err)
		}
		return db.Job{}, fmt.Errorf("cancel job: %w", err)
	}
	return s.Job(ctx, id)
}

// InterruptJobDevices fails every device whose call was under way when the
// hub (every hub on this database) stopped.
func (s *Store) InterruptJobDevices(ctx context.Context, why string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE jobs SET failed = failed +
			(SELECT COUNT(*) FROM job_devices WHERE job = jobs.id AND status = 'running')
			WHERE id IN (SELECT DISTINCT job FROM job_devices WHERE status = 'running')`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE job_devices SET status = 'failed', finished_at = $1, error = $2 WHERE status = 'running'`,
			ms(s.Now()), why)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("interrupt job devices: %w", err)
	}
	return n, nil
}

// JobDevices lists a page of a job's devices with their outcomes.
func (s *Store) JobDevices(ctx context.Context, id string, f db.JobDeviceFilter) ([]db.JobDevice, error) {
	var key int64
	if err := s.pool.QueryRow(ctx, `SELECT id FROM jobs WHERE job_id = $1`, id).Scan(&key); err != nil {
		return nil, fmt.Errorf("job %q: %w", id, translate(err))
	}
	q, args := `SELECT device_id, status, started_at, finished_at, result, error FROM job_devices
		WHERE job = $1 AND device_id COLLATE "C" > $2`, []any{key, f.After}
	if f.Status != "" {
		q += ` AND status = $3`
		args = append(args, f.Status)
	}
	q += ` ORDER BY device_id COLLATE "C"`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("devices of job %q: %w", id, err)
	}
	defer rows.Close()
	var out []db.JobDevice
	for rows.Next() {
		var (
			jd                db.JobDevice
			started, finished *int64
			result            string
		)
		if err := rows.Scan(&jd.DeviceID, &jd.Status, &started, &finished, &result, &jd.Error); err != nil {
			return nil, fmt.Errorf("devices of job %q: %w", id, err)
		}
		if started != nil {
			jd.StartedAt = storage.FromUnixMS(*started)
		}
		if finished != nil {
			jd.FinishedAt = storage.FromUnixMS(*finished)
		}
		if result != "" {
			jd.Result = json.RawMessage(result)
		}
		out = append(out, jd)
	}
	return out, rows.Err()
}

// PruneJobs deletes old finished jobs and those beyond the newest keep.
func (s *Store) PruneJobs(ctx context.Context, cutoff time.Time, keep int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM jobs WHERE finished_at IS NOT NULL AND (finished_at < $1 OR id NOT IN
		(SELECT id FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT $2))`, ms(cutoff), keep)
	if err != nil {
		return 0, fmt.Errorf("prune jobs: %w", err)
	}
	return tag.RowsAffected(), nil
}
