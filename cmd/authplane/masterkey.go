package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/authplane/authplane/pkg/app"
	"github.com/authplane/authplane/pkg/config"
	"github.com/authplane/authplane/pkg/keystore"
)

// masterKey runs `authplane master-key check|rotate` with serve's configuration.
func masterKey(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "check" && args[0] != "rotate") {
		fmt.Fprintf(stderr, "authplane master-key: want check or rotate\n\n%s", usage)
		return 2
	}
	cfg, err := config.Parse(args[1:], getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "authplane:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var r *app.MasterKeyReport
	if args[0] == "check" {
		r, err = app.CheckMasterKey(ctx, cfg)
	} else {
		r, err = app.RotateMasterKey(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, "authplane:", err)
		return 1
	}
	fmt.Fprintf(stdout, "database: %s\nAUTHPLANE_MASTER_KEY: master key %s\n", r.Database, r.Current)
	if len(r.Previous) > 0 {
		fmt.Fprintf(stdout, "AUTHPLANE_PREVIOUS_MASTER_KEYS: master keys %s\n", strings.Join(r.Previous, ", "))
	}
	if r.Rotation != nil {
		reportRotation(stdout, r)
		return 0
	}
	if len(r.Stored) == 0 {
		fmt.Fprintln(stdout, "no keys stored yet: the next start of `authplane serve` stores them")
		return 0
	}
	underPrevious := 0
	for _, k := range r.Stored {
		which := "AUTHPLANE_MASTER_KEY"
		if k.MasterKeyID != r.Current {
			which, underPrevious = "AUTHPLANE_PREVIOUS_MASTER_KEYS", underPrevious+1
		}
		fmt.Fprintf(stdout, "  %s v%d (%s): wrapped under master key %s (%s)\n", k.Purpose, k.Version, k.Origin, k.MasterKeyID, which)
	}
	if underPrevious > 0 {
		fmt.Fprintf(stdout, "ok: the master keys open every stored key; %d still wrapped under a previous key: run `authplane master-key rotate`\n", underPrevious)
	} else {
		fmt.Fprintln(stdout, "ok: AUTHPLANE_MASTER_KEY opens every stored key")
	}
	return 0
}

func reportRotation(w io.Writer, r *app.MasterKeyReport) {
	rot := r.Rotation
	if len(rot.Created) > 0 {
		fmt.Fprintf(w, "stored %d keys under master key %s: the database had none yet\n", len(rot.Created), r.Current)
	}
	for _, k := range rot.Rewrapped {
		fmt.Fprintf(w, "re-wrapped %s v%d: from master key %s to %s\n", k.Purpose, k.Version, k.MasterKeyID, r.Current)
	}
	if len(rot.Created) == 0 && len(rot.Rewrapped) == 0 {
		fmt.Fprintf(w, "nothing to re-wrap: every stored key is already wrapped under master key %s (AUTHPLANE_MASTER_KEY)\n", r.Current)
	} else {
		fmt.Fprintf(w, "done: every stored key is wrapped under master key %s (AUTHPLANE_MASTER_KEY)\n", r.Current)
	}
	if len(r.Previous) > 0 && !slices.ContainsFunc(r.Stored, func(k keystore.StoredKey) bool { return k.MasterKeyID != r.Current }) {
		fmt.Fprintln(w, "nothing stored needs AUTHPLANE_PREVIOUS_MASTER_KEYS any more: once every process runs with the new key, restart them without it")
	}
}
