// Command authplane runs the platform: `authplane serve` runs every service in one process, or the subset named
// by --services when each service runs in a process of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"go.opentelemetry.io/otel"

	"github.com/authplane/authplane/pkg/app"
	"github.com/authplane/authplane/pkg/config"
)

const usage = `authplane: a multi-tenant OAuth2/OpenID Connect authorization server

Usage:
  authplane serve [flags]               run the services (all by default; see --services)
  authplane master-key check [flags]    check that the master key opens the keys the database stores
  authplane master-key rotate [flags]   re-wrap every stored key under AUTHPLANE_MASTER_KEY, after starting
                                        with the previous key in AUTHPLANE_PREVIOUS_MASTER_KEYS
  authplane healthcheck                 exit 0 when the server's /readyz answers 200, else 1 (for container health checks;
                                        https when AUTHPLANE_TLS_CERT_FILE is set)
  authplane backup --to F               copy the database to F while the server runs (SQLite: VACUUM INTO; PostgreSQL: pg_dump)
  authplane services                    list the service names --services accepts
  authplane help                        show this text

Run "authplane serve -h" for the flags; each has an AUTHPLANE_ environment variable. The master-key commands
take the same configuration as serve.

`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run runs the command in args with the environment getenv and returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, fullUsage())
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], getenv, stderr)
	case "master-key":
		return masterKey(args[1:], getenv, stdout, stderr)
	case "services":
		cfg, _ := config.Parse(nil, func(string) string { return "" })
		fmt.Fprintln(stdout, strings.Join(cfg.Services, "\n"))
		return 0
	case "healthcheck":
		return healthcheck(args[1:], getenv, stdout, stderr)
	case "backup":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return backup(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, fullUsage())
		return 0
	default:
		if isClientCommand(args[0]) {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return cli(ctx, args, &cliEnv{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr})
		}
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], fullUsage())
		return 2
	}
}

// fullUsage is the server's commands and the client's.
func fullUsage() string {
	return usage + fmt.Sprintf(cliUsage, clientCommandList())
}

func serve(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := config.Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "authplane:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintln(stderr, "authplane: invalid log level", cfg.LogLevel)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The OpenTelemetry SDK reports its own failures (an unreachable collector) through one process-wide handler:
	// as warnings of the process's JSON log rather than plain text on stderr.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	tuneGC(cfg, getenv, log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	if cfg.PprofAddr != "" {
		go func() {
			// pprof registers on http.DefaultServeMux, which nothing else uses.
			log.Info("profiling enabled", "addr", cfg.PprofAddr)
			if err := http.ListenAndServe(cfg.PprofAddr, nil); err != nil {
				log.Error("pprof listener", "error", err)
			}
		}()
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.HTTPAddr, "error", err)
		return 1
	}
	grpcLn, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.GRPCAddr, "error", err)
		return 1
	}
	if err := a.Serve(ctx, httpLn, grpcLn); err != nil {
		log.Error("stopped on error", "error", err)
		return 1
	}
	return 0
}

// tuneGC trades memory for throughput unless the operator chose (GOGC, GOMEMLIMIT): token issuance makes
// short-lived garbage at a high rate, and GOGC=400 gives about 40% more tokens per second than the default
// (docs/benchmarks.md) for a heap of tens of MB. The soft memory limit keeps a password-hashing flood, whose
// buffers the budget already bounds, from growing the heap past the budget plus headroom.
func tuneGC(cfg *config.Config, getenv func(string) string, log *slog.Logger) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.PasswordHashing.MemoryBudget + 64<<20)
	}
	log.Debug("garbage collector", "memory_limit_bytes", debug.SetMemoryLimit(-1)) // -1 reads without changing
}
