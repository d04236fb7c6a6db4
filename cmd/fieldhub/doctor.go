package main

import (
	"context"
	"fmt"
	"io"

	"fieldhub/doctor"
)

// runDoctor is `fieldhub doctor [serve flags]`: every check, printed with
// its fix; a problem makes the exit status 1.
func runDoctor(ctx context.Context, e env, args []string) error {
	cfg, err := parseServeAs(e, "doctor", args)
	if err != nil {
		return err
	}
	findings := doctor.Run(ctx, cfg.Doctor(true))
	printFindings(e.stdout, findings)
	if n := count(findings, doctor.Problem); n > 0 {
		return fmt.Errorf("doctor found %s", plural(int64(n), "problem"))
	}
	return nil
}

func printFindings(w io.Writer, findings []doctor.Finding) {
	for _, f := range findings {
		sev := f.Severity.String()
		if f.Severity == doctor.Problem {
			sev = "PROBLEM"
		}
		fmt.Fprintf(w, "%-8s %-12s %s\n", sev, f.Check, f.What)
		if f.Fix != "" {
			fmt.Fprintf(w, "%-8s %-12s fix: %s\n", "", "", f.Fix)
		}
	}
	fmt.Fprintf(w, "\n%s, %s.\n", plural(int64(count(findings, doctor.Problem)), "problem"), plural(int64(count(findings, doctor.Warning)), "warning"))
}

func count(findings []doctor.Finding, s doctor.Severity) int {
	n := 0
	for _, f := range findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}
