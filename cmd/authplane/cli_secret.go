package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// readSecret gets a secret (a client secret, a password) from, in order: the flag (convenient in scripts, but
// other users see it in the process list), the first line of standard input when fromStdin, the environment
// value, and a prompt that does not echo when standard input is a terminal. It answers "" when none gives one.
// The secret is never printed.
func readSecret(c *call, what, flagValue string, fromStdin bool, envValue string, confirm bool) (string, error) {
	if flagValue != "" && fromStdin {
		return "", usageErrorf("give the %s by a flag or on standard input, not both", what)
	}
	switch {
	case flagValue != "":
		return flagValue, nil
	case fromStdin:
		line, err := bufio.NewReader(c.env.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the %s from standard input: %w", what, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", usageErrorf("standard input holds no %s", what)
		}
		return line, nil
	case envValue != "":
		return envValue, nil
	}
	tty, ok := c.env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(tty.Fd())) {
		return "", nil
	}
	secret, err := prompt(tty, c.env.stderr, what)
	if err != nil || !confirm || secret == "" {
		return secret, err
	}
	again, err := prompt(tty, c.env.stderr, what+" again")
	if err != nil {
		return "", err
	}
	if again != secret {
		return "", usageErrorf("the two %ss differ", what)
	}
	return secret, nil
}

func prompt(tty *os.File, w io.Writer, what string) (string, error) {
	fmt.Fprintf(w, "%s: ", strings.ToUpper(what[:1])+what[1:])
	raw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the %s: %w", what, err)
	}
	return string(raw), nil
}
