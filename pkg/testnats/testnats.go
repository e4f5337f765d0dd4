// Package testnats gives tests a NATS server with JetStream: the machine's (AUTHPLANE_TEST_NATS_URL, default
// nats://127.0.0.1:4222, which CI starts), or one of a test's own, run from the nats-server binary, that the test
// may stop, freeze and start again without disturbing anyone else.
//
// A server that cannot be reached or started fails the test: the audit stream's tests are required. Set
// AUTHPLANE_TEST_NATS_OPTIONAL=1 to skip them instead on a machine without NATS.
package testnats

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// URL is the machine's NATS server, checked to answer with JetStream on.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AUTHPLANE_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	if err := ping(u); err != nil {
		unavailable(t, "NATS with JetStream is required but does not answer at %s (start it: .ci/run shows how): %v", u, err)
	}
	return u
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("AUTHPLANE_TEST_NATS_OPTIONAL") != "" {
		t.Skipf(format, args...)
	}
	t.Fatalf(format, args...)
}

// ping connects and asks JetStream for the account's information.
func ping(u string) error {
	nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Port is the TCP port of a NATS URL.
func Port(t testing.TB, u string) int {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(parsed.Port())
	if err != nil {
		t.Fatalf("no port in %s", u)
	}
	return p
}

// Server is a nats-server process of a test's own, on a loopback port and a store in the test's directory,
// both kept across Stop and Start.
type Server struct {
	URL  string
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a nats-server of the test's own (AUTHPLANE_TEST_NATS_SERVER, else nats-server on PATH, else
// /usr/sbin/nats-server), stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("AUTHPLANE_TEST_NATS_SERVER")
	if bin == "" {
		if p, err := exec.LookPath("nats-server"); err == nil {
			bin = p
		} else {
			bin = "/usr/sbin/nats-server"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		unavailable(t, "nats-server is required to run a NATS server of the test's own: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{URL: "nats://127.0.0.1:" + strconv.Itoa(port), bin: bin, port: port, dir: t.TempDir()}
	s.Start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Start starts the server again (after Stop), on its port and store, and waits until JetStream answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("the NATS server already runs")
	}
	cmd := exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	out, err := os.Create(s.dir + "/nats-server.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		unavailable(t, "start %s: %v", s.bin, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ping(s.URL)
		if err == nil {
			return
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.dir + "/nats-server.log")
			t.Fatalf("nats-server exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server does not answer at %s: %v", s.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server as an operator would (SIGTERM: it closes its store cleanly) and waits until it exited.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a frozen server could not act on SIGTERM
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Wipe empties the store of a stopped server: it starts again as a new server would, with no stream.
func (s *Server) Wipe(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("stop the NATS server before wiping its store")
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "nats-server.log" {
			if err := os.RemoveAll(s.dir + "/" + e.Name()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Freeze stops the server's process (SIGSTOP) without closing its connections: clients stay connected, and
// nothing they send is answered until Thaw.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Thaw lets a frozen server go on (SIGCONT): it reads what was sent meanwhile.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// Connect returns a connection (closed when the test ends) and its JetStream context.
func Connect(t testing.TB, u string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(u, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", u, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
