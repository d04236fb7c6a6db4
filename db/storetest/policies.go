package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"fieldhub/db"
	"fieldhub/storage"
)

// RunPolicies tests the shared access policies of the service API.
func RunPolicies(t *testing.T, b Backend) {
	cases(t, b,
		test{"Lifecycle", testPolicyLifecycle},
		test{"Bound", testPolicyBound},
	)
}

func testPolicyLifecycle(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	p, err := db.NewPolicy("service", db.RightServiceConnect|db.RightRegistryWrite, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreatePolicy(ctx, p); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := d.CreatePolicy(ctx, p); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("create twice: err = %v, want ErrConflict", err)
	}
	got, err := d.Policy(ctx, "service")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	want := db.RightRegistryRead | db.RightRegistryWrite | db.RightServiceConnect
	if got.Name != "service" || got.PrimaryKey != p.PrimaryKey || got.SecondaryKey != p.SecondaryKey || got.Rights != want ||
		!got.CreatedAt.Equal(T0) || !got.UpdatedAt.Equal(T0) {
		t.Errorf("got %+v, want %+v with rights %s", got, p, want)
	}
	if _, err := d.Policy(ctx, "Service"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("names are case-sensitive: err = %v, want ErrNotFound", err)
	}

	clk.Advance(time.Minute)
	rot, err := d.RotatePolicyKey(ctx, "service", db.SecondaryKey)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rot.SecondaryKey == p.SecondaryKey || rot.PrimaryKey != p.PrimaryKey || !rot.UpdatedAt.Equal(T0.Add(time.Minute)) {
		t.Errorf("rotate secondary: %+v", rot)
	}
	var inv *storage.InvalidError
	if _, err := d.RotatePolicyKey(ctx, "service", "tertiary"); !errors.As(err, &inv) {
		t.Errorf("rotate unknown key: err = %v, want InvalidError", err)
	}
	if _, err := d.RotatePolicyKey(ctx, "nobody", db.PrimaryKey); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("rotate missing: err = %v, want ErrNotFound", err)
	}

	q, _ := db.NewPolicy("app", db.RightRegistryRead, clk.Now())
	if _, err := d.CreatePolicy(ctx, q); err != nil {
		t.Fatal(err)
	}
	d = b.Reopen(t, d, clk.Now)
	list, err := d.Policies(ctx)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list) != 2 || list[0].Name != "app" || list[1].Name != "service" || list[1].SecondaryKey != rot.SecondaryKey {
		t.Errorf("list after a restart = %+v; want app, service with the rotated key", list)
	}
	if err := d.DeletePolicy(ctx, "service"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := d.DeletePolicy(ctx, "service"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("delete twice: err = %v, want ErrNotFound", err)
	}
	if _, err := d.Policy(ctx, "service"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get deleted: err = %v, want ErrNotFound", err)
	}
}

func testPolicyBound(t *testing.T, b Backend) {
	ctx := context.Background()
	d, clk := open(t, b)
	for i := range db.MaxPolicies {
		p, _ := db.NewPolicy(fmt.Sprintf("p%02d", i), db.RightRegistryRead, clk.Now())
		if _, err := d.CreatePolicy(ctx, p); err != nil {
			t.Fatalf("policy %d: %v", i, err)
		}
	}
	p, _ := db.NewPolicy("one-too-many", db.RightRegistryRead, clk.Now())
	var inv *storage.InvalidError
	if _, err := d.CreatePolicy(ctx, p); !errors.As(err, &inv) {
		t.Errorf("policy %d: err = %v, want InvalidError", db.MaxPolicies+1, err)
	}
}
