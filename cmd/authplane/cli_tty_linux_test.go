package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/authplane/authplane/pkg/testenv"
)

// openPTY opens a pseudo-terminal: the terminal side, given to a command as its standard input, and the side a
// person types on (which also receives what the terminal echoes).
func openPTY(t *testing.T) (terminal, keyboard *os.File) {
	t.Helper()
	// Opened non-blocking and wrapped by os.NewFile, the person's side reads with deadlines (calling Fd on an
	// *os.File would make it blocking for good).
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	keyboard = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { keyboard.Close() })
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("the pseudo-terminal cannot be opened here: %v", err)
	}
	t.Cleanup(func() { terminal.Close() })
	return terminal, keyboard
}

// typeWhenEchoOff types text once the terminal stopped echoing, as a person answers the prompt: typed before,
// it would be echoed because it was typed too early, which says nothing of the command.
func typeWhenEchoOff(t *testing.T, terminal, keyboard *os.File, text string, done <-chan struct{}) {
	guard := time.After(time.Minute)
	for {
		st, err := unix.IoctlGetTermios(int(terminal.Fd()), unix.TCGETS)
		if err != nil {
			t.Error(err)
			return
		}
		if st.Lflag&unix.ECHO == 0 {
			break
		}
		select {
		case <-done:
			t.Error("the command ended without turning the echo off")
			return
		case <-guard:
			t.Error("the command never turned the echo off")
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := keyboard.WriteString(text); err != nil {
		t.Error(err)
	}
}

// echoed is what the terminal showed the person since it opened.
func echoed(t *testing.T, keyboard *os.File) string {
	t.Helper()
	if err := keyboard.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatalf("cannot read the pseudo-terminal without blocking: %v", err)
	}
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := keyboard.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Logf("reading the terminal: %v", err)
			}
			return b.String()
		}
	}
}

// runOnTerminal runs a command with a terminal as its standard input, typing text at its prompts.
func runOnTerminal(t *testing.T, u *cliUser, text string, args ...string) (cliResult, string) {
	t.Helper()
	terminal, keyboard := openPTY(t)
	var out, errs bytes.Buffer
	done := make(chan struct{})
	typed := make(chan struct{})
	go func() {
		defer close(typed)
		typeWhenEchoOff(t, terminal, keyboard, text, done)
	}()
	getenv := func(k string) string { return u.env[k] }
	code := cli(context.Background(), args, &cliEnv{getenv: getenv, stdin: terminal, stdout: &out, stderr: &errs})
	close(done)
	<-typed
	return cliResult{code, out.String(), errs.String()}, echoed(t, keyboard)
}

// TestCLIPromptsWithoutEcho: on a terminal, the client secret and a new password are asked for with the echo off,
// the new password twice; nothing typed appears on the terminal or in the output.
func TestCLIPromptsWithoutEcho(t *testing.T) {
	w := newCLIWorld(t, testenv.SQLite)
	u := w.u

	r, screen := runOnTerminal(t, u, w.adminSecret+"\n", "login", "--issuer-url", w.env.HTTPURL, "--grpc-addr", w.env.GRPCAddr, "--tenant", "acme", "--client-id", w.adminID, "--profile", "typed")
	if r.code != exitOK {
		t.Fatalf("login at a prompt: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Client secret: ") {
		t.Errorf("no prompt: %q", r.stderr)
	}
	if strings.Contains(screen+r.stdout+r.stderr, w.adminSecret) {
		t.Errorf("the secret was shown: screen %q, stdout %q, stderr %q", screen, r.stdout, r.stderr)
	}

	var sys cliClient
	u.okJSON(&sys, "", "client", "create", "--workspace", "system", "--scopes", "identity")
	u.mustLogin(w.env, "acme", "system", sys.ClientID, *sys.ClientSecret)
	u.ok("", "pool", "create", "people")
	var user struct {
		ID string `json:"id"`
	}
	u.okJSON(&user, "", "user", "create", "--pool", "people", "--identifier", "email:ann@example.com")

	r, screen = runOnTerminal(t, u, "Typed-Passw0rd!\nTyped-Passw0rd?\n", "user", "set-password", "--pool", "people", user.ID)
	if r.code != exitUsage || !strings.Contains(r.stderr, "differ") {
		t.Errorf("two different passwords: exit %d: %s", r.code, r.stderr)
	}
	r, screen2 := runOnTerminal(t, u, "Typed-Passw0rd!\nTyped-Passw0rd!\n", "user", "set-password", "--pool", "people", user.ID)
	if r.code != exitOK {
		t.Fatalf("set-password at a prompt: exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(r.stderr, "ew password") != 2 {
		t.Errorf("the password was not asked for twice: %q", r.stderr)
	}
	if strings.Contains(screen+screen2+r.stdout+r.stderr, "Typed-Passw0rd") {
		t.Errorf("the password was shown: %q %q %q", screen+screen2, r.stdout, r.stderr)
	}
	var users []struct {
		HasPassword bool `json:"has_password"`
	}
	u.okJSON(&users, "", "user", "list", "--pool", "people")
	if len(users) != 1 || !users[0].HasPassword {
		t.Errorf("the typed password was not set: %+v", users)
	}
}
