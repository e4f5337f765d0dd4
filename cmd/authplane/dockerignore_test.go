package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerBuildContext reads .dockerignore with Docker's own matcher (no Docker engine runs here): every file
// the image's build compiles or embeds is in the build context, and local databases, master keys and the
// repository's history are not.
func TestDockerBuildContext(t *testing.T) {
	f, err := os.Open("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(file string) bool {
		t.Helper()
		ex, err := pm.MatchesOrParentMatches(file)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}

	needed := append([]string{"go.mod", "go.sum"}, buildFiles(t)...)
	if len(needed) < 50 {
		t.Fatalf("go list found only %d files of the build: %v", len(needed), needed)
	}
	for _, file := range needed {
		if excluded(file) {
			t.Errorf("the build needs %s, but .dockerignore leaves it out of the context", file)
		}
	}
	for _, file := range []string{
		"authplane.db", "authplane.db-wal", "authplane.db-shm", "authplane.db.key",
		"data/authplane.db", "pkg/app/authplane.db.key", "pkg/secrets/test.pem", ".env",
		".git/config", ".ci/run", "bin/authplane", "docs/postman/node_modules/newman/package.json", "README.md",
		"tls/tls.key", "tls-ca/ca.key", // docker-compose.tls.yml's certificate key and CA key
	} {
		if !excluded(file) {
			t.Errorf("%s would be sent to the Docker daemon as build context", file)
		}
	}
}

// buildFiles lists, relative to the module root, the Go and embedded files of the module's own packages that
// `go build ./cmd/authplane` (the Dockerfile's build) reads.
func buildFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/authplane")
	cmd.Dir = "../.."
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, path.Join(filepath.ToSlash(rel), name))
		}
	}
	return files
}
