package auth

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := NewThrottle(func() time.Time { return now }, 3, time.Second, 8*time.Second)
	for i := 0; i < 3; i++ {
		if ok, _ := th.Allow("alice"); !ok {
			t.Fatalf("attempt %d refused within free failures", i+1)
		}
		th.Fail("alice")
	}
	// Fourth failure starts the delays.
	th.Fail("alice")
	if ok, wait := th.Allow("alice"); ok || wait != time.Second {
		t.Errorf("after 4 failures: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := th.Allow("bob"); !ok {
		t.Error("another key was throttled")
	}
	now = now.Add(time.Second)
	th.Fail("alice")
	if _, wait := th.Allow("alice"); wait != 2*time.Second {
		t.Errorf("wait after 5 failures = %v, want 2s", wait)
	}
	for i := 0; i < 10; i++ {
		th.Fail("alice")
	}
	if _, wait := th.Allow("alice"); wait != 8*time.Second {
		t.Errorf("wait is not capped: %v", wait)
	}
	th.Succeed("alice")
	if ok, _ := th.Allow("alice"); !ok {
		t.Error("success did not reset")
	}
}

func TestPassword(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Error("short password accepted")
	}
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "correct horse"); err != nil {
		t.Errorf("right password refused: %v", err)
	}
	if err := CheckPassword(h, "wrong horse"); err != ErrBadPassword {
		t.Errorf("wrong password: %v", err)
	}
}
