package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"fieldhub/storage"
)

// Job kinds, states and the states of each device in a job.
const (
	JobMethod = "method"
	JobTwin   = "twin"
	JobC2D    = "c2d"

	JobScheduled = "scheduled"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobCancelled = "cancelled"
	JobFailed    = "failed"

	JobDevicePending   = "pending"
	JobDeviceRunning   = "running"
	JobDeviceSucceeded = "succeeded"
	JobDeviceFailed    = "failed"
	JobDeviceCancelled = "cancelled"
)

// Job is a command run on every device a fleet query selects.
type Job struct {
	ID             string
	Type           string          // JobMethod, JobTwin or JobC2D
	Query          string          // the condition
	Payload        json.RawMessage // what to run (package jobs owns its shape)
	Actor          string
	Status         string
	MaxConcurrency int
	DeviceTimeout  time.Duration
	CreatedAt      time.Time
	StartAt        time.Time
	StartedAt      time.Time // zero until it started
	FinishedAt     time.Time // zero until it finished
	// Total is the number of devices selected when it started; Pending
	// (Total less the rest) includes the devices whose call is under way.
	Total, Succeeded, Failed, Cancelled int
	Error                               string
}

// Pending is how many devices have no outcome yet.
func (j Job) Pending() int { return j.Total - j.Succeeded - j.Failed - j.Cancelled }

// Finished reports whether the job reached a final state.
func (j Job) Finished() bool {
	return j.Status == JobCompleted || j.Status == JobCancelled || j.Status == JobFailed
}

// JobDevice is one device's part in a job.
type JobDevice struct {
	DeviceID   string
	Status     string
	StartedAt  time.Time
	FinishedAt time.Time
	Result     json.RawMessage // nil when there is none
	Error      string
}

// JobFilter selects jobs for a list, newest first.
type JobFilter struct {
	Status string // "" for all
	Limit  int
}

// JobDeviceFilter selects a page of a job's devices, in device id order.
type JobDeviceFilter struct {
	Status string // "" for all
	After  string // device ids after this one
	Limit  int
}

// JobColumns are the columns of jobs ScanJob reads, for every store.
const JobColumns = `job_id, type, query, payload, actor, status, max_concurrency, device_timeout, created_at, start_at,
	started_at, finished_at, total, succeeded, failed, cancelled, error`

// ScanJob reads a row of JobColumns.
func ScanJob(s Scanner) (Job, error) {
	var (
		j                         Job
		payload                   string
		timeout, created, startAt int64
		started, finished         sql.NullInt64
	)
	if err := s.Scan(&j.ID, &j.Type, &j.Query, &payload, &j.Actor, &j.Status, &j.MaxConcurrency, &timeout, &created, &startAt,
		&started, &finished, &j.Total, &j.Succeeded, &j.Failed, &j.Cancelled, &j.Error); err != nil {
		return Job{}, err
	}
	j.Payload = json.RawMessage(payload)
	j.DeviceTimeout = time.Duration(timeout) * time.Millisecond
	j.CreatedAt, j.StartAt, j.StartedAt, j.FinishedAt = fromMS(created), fromMS(startAt), nullMS(started), nullMS(finished)
	return j, nil
}

// CreateJob stores a new job, scheduled; its id must be new
// (storage.ErrConflict otherwise).
func (d *DB) CreateJob(ctx context.Context, j Job) (Job, error) {
	j.Status, j.CreatedAt = JobScheduled, fromMS(ms(d.Now()))
	j.StartAt = fromMS(ms(j.StartAt))
	_, err := d.write.ExecContext(ctx, `INSERT INTO jobs (job_id, type, query, payload, actor, status, max_concurrency,
		device_timeout, created_at, start_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Type, j.Query, string(j.Payload), j.Actor, j.Status, j.MaxConcurrency, j.DeviceTimeout.Milliseconds(),
		ms(j.CreatedAt), ms(j.StartAt))
	if err := translate(err); err != nil {
		if err == storage.ErrConflict {
			return Job{}, fmt.Errorf("job %q: %w", j.ID, storage.ErrConflict)
		}
		return Job{}, fmt.Errorf("create job: %w", err)
	}
	return j, nil
}

// Job reads a job.
func (d *DB) Job(ctx context.Context, id string) (Job, error) {
	j, err := ScanJob(d.write.QueryRowContext(ctx, `SELECT `+JobColumns+` FROM jobs WHERE job_id = ?`, id))
	if err := translate(err); err != nil {
		return Job{}, fmt.Errorf("job %q: %w", id, err)
	}
	return j, nil
}

// Jobs lists jobs, newest first.
func (d *DB) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q, args := `SELECT `+JobColumns+` FROM jobs`, []any{}
	if f.Status != "" {
		q += ` WHERE status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return d.queryJobs(ctx, q, args...)
}

func (d *DB) queryJobs(ctx context.Context, q string, args ...any) ([]Job, error) {
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := ScanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// ActiveJobs are the jobs scheduled or running, oldest first: what a
// restarted hub resumes.
func (d *DB) ActiveJobs(ctx context.Context) ([]Job, error) {
	return d.queryJobs(ctx, `SELECT `+JobColumns+` FROM jobs WHERE status IN ('scheduled', 'running') ORDER BY start_at, id`)
}

// StartJob records that a scheduled job started on these devices: each is
// pending. A job no longer scheduled (cancelled meanwhile) is
// storage.ErrConflict.
func (d *DB) StartJob(ctx context.Context, id string, deviceIDs []string) (Job, error) {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var key int64
		var status string
		if err := tx.QueryRowContext(ctx, `SELECT id, status FROM jobs WHERE job_id = ?`, id).Scan(&key, &status); err != nil {
			return translate(err)
		}
		if status != JobScheduled {
			return fmt.Errorf("job is %s, not scheduled: %w", status, storage.ErrConflict)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO job_devices (job, device_id, status) VALUES (?, ?, 'pending')`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, dev := range deviceIDs {
			if _, err := stmt.ExecContext(ctx, key, dev); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'running', started_at = ?1,
			total = (SELECT COUNT(*) FROM job_devices WHERE job = ?2) WHERE id = ?2`, ms(d.Now()), key)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("start job %q: %w", id, err)
	}
	return d.Job(ctx, id)
}

// ClaimJobDevices marks up to n pending devices of a running job as
// running and returns them, in device id order; none when the job is not
// running.
func (d *DB) ClaimJobDevices(ctx context.Context, id string, n int) ([]string, error) {
	var out []string
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT jd.device_id FROM job_devices jd JOIN jobs j ON j.id = jd.job
			WHERE j.job_id = ? AND j.status = 'running' AND jd.status = 'pending' ORDER BY jd.device_id LIMIT ?`, id, n)
		if err != nil {
			return err
		}
		for rows.Next() {
			var dev string
			if err := rows.Scan(&dev); err != nil {
				rows.Close()
				return err
			}
			out = append(out, dev)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		args := []any{ms(d.Now()), id}
		for _, dev := range out {
			args = append(args, dev)
		}
		_, err = tx.ExecContext(ctx, `UPDATE job_devices SET status = 'running', started_at = ?
			WHERE job = (SELECT id FROM jobs WHERE job_id = ?) AND device_id IN (?`+strings.Repeat(", ?", len(out)-1)+`)`, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim devices of job %q: %w", id, err)
	}
	return out, nil
}

// FinishJobDevice records a device's outcome (JobDeviceSucceeded,
// JobDeviceFailed or JobDeviceCancelled) and counts it in the job. A
// device that already has an outcome keeps it (storage.ErrConflict).
func (d *DB) FinishJobDevice(ctx context.Context, id string, out JobDevice) error {
	col := map[string]string{JobDeviceSucceeded: "succeeded", JobDeviceFailed: "failed", JobDeviceCancelled: "cancelled"}[out.Status]
	if col == "" {
		return invalid("status", "a device's outcome is succeeded, failed or cancelled, not %q", out.Status)
	}
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var key int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE job_id = ?`, id).Scan(&key); err != nil {
			return translate(err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE job_devices SET status = ?, finished_at = ?, result = ?, error = ?
			WHERE job = ? AND device_id = ? AND status IN ('pending', 'running')`,
			out.Status, ms(d.Now()), string(out.Result), out.Error, key, out.DeviceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("device %q of job %q has an outcome already or is not in it: %w", out.DeviceID, id, storage.ErrConflict)
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET `+col+` = `+col+` + 1 WHERE id = ?`, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish device %q of job %q: %w", out.DeviceID, id, err)
	}
	return nil
}

// FinishJob gives a job its final state (JobCompleted, JobFailed with why).
// A job already finished keeps its state; the job is returned as stored.
func (d *DB) FinishJob(ctx context.Context, id, status, why string) (Job, error) {
	if status != JobCompleted && status != JobFailed {
		return Job{}, invalid("status", "a job finishes completed or failed, not %q", status)
	}
	if _, err := d.write.ExecContext(ctx, `UPDATE jobs SET status = ?, error = ?, finished_at = ?
		WHERE job_id = ? AND status IN ('scheduled', 'running')`, status, why, ms(d.Now()), id); err != nil {
		return Job{}, fmt.Errorf("finish job %q: %w", id, err)
	}
	return d.Job(ctx, id)
}

// CancelJob cancels a scheduled or running job: its pending devices are
// cancelled; devices whose call is under way get their outcome when it
// ends. A finished job is storage.ErrConflict.
func (d *DB) CancelJob(ctx context.Context, id string) (Job, error) {
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		var key int64
		var status string
		if err := tx.QueryRowContext(ctx, `SELECT id, status FROM jobs WHERE job_id = ?`, id).Scan(&key, &status); err != nil {
			return translate(err)
		}
		if status != JobScheduled && status != JobRunning {
			return fmt.Errorf("job %q is %s already: %w", id, status, storage.ErrConflict)
		}
		now := ms(d.Now())
		res, err := tx.ExecContext(ctx, `UPDATE job_devices SET status = 'cancelled', finished_at = ? WHERE job = ? AND status = 'pending'`, now, key)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'cancelled', finished_at = ?, cancelled = cancelled + ? WHERE id = ?`, now, n, key)
		return err
	})
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return Job{}, fmt.Errorf("job %q: %w", id, err)
		}
		return Job{}, fmt.Errorf("cancel job: %w", err)
	}
	return d.Job(ctx, id)
}

// InterruptJobDevices gives every device whose call was under way when the
// hub stopped the outcome failed, with why: nobody knows whether the
// device acted on it, and it is not sent twice. It returns how many.
func (d *DB) InterruptJobDevices(ctx context.Context, why string) (int64, error) {
	var n int64
	err := d.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET failed = failed +
			(SELECT COUNT(*) FROM job_devices WHERE job = jobs.id AND status = 'running')
			WHERE id IN (SELECT DISTINCT job FROM job_devices WHERE status = 'running')`); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE job_devices SET status = 'failed', finished_at = ?, error = ? WHERE status = 'running'`,
			ms(d.Now()), why)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("interrupt job devices: %w", err)
	}
	return n, nil
}

// JobDevices lists a page of a job's devices with their outcomes.
func (d *DB) JobDevices(ctx context.Context, id string, f JobDeviceFilter) ([]JobDevice, error) {
	var key int64
	if err := d.read.QueryRowContext(ctx, `SELECT id FROM jobs WHERE job_id = ?`, id).Scan(&key); err != nil {
		return nil, fmt.Errorf("job %q: %w", id, translate(err))
	}
	q, args := `SELECT device_id, status, started_at, finished_at, result, error FROM job_devices WHERE job = ? AND device_id > ?`,
		[]any{key, f.After}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY device_id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := d.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("devices of job %q: %w", id, err)
	}
	defer rows.Close()
	var out []JobDevice
	for rows.Next() {
		var (
			jd                JobDevice
			started, finished sql.NullInt64
			result            string
		)
		if err := rows.Scan(&jd.DeviceID, &jd.Status, &started, &finished, &result, &jd.Error); err != nil {
			return nil, fmt.Errorf("devices of job %q: %w", id, err)
		}
		jd.StartedAt, jd.FinishedAt = nullMS(started), nullMS(finished)
		if result != "" {
			jd.Result = json.RawMessage(result)
		}
		out = append(out, jd)
	}
	return out, rows.Err()
}

// PruneJobs deletes finished jobs (with their devices) that finished
// before cutoff, and the oldest finished ones beyond the newest keep.
func (d *DB) PruneJobs(ctx context.Context, cutoff time.Time, keep int) (int64, error) {
	res, err := d.write.ExecContext(ctx, `DELETE FROM jobs WHERE finished_at IS NOT NULL AND (finished_at < ? OR id NOT IN
		(SELECT id FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT ?))`, ms(cutoff), keep)
	if err != nil {
		return 0, fmt.Errorf("prune jobs: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
