package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// column is one column of a table: its header and how a row shows in it.
type column[T any] struct {
	header string
	value  func(T) string
}

// apiJSON is the REST facade's JSON (the gateway's marshaler): snake_case names, defaults included.
var apiJSON = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

// marshal is a row's JSON: the API's for a message, encoding/json's for the CLI's own rows.
func marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return apiJSON.Marshal(m)
	}
	return json.Marshal(v)
}

// printItems prints a list: a JSON array, or a table with a header.
func printItems[T any](c *call, items []T, cols []column[T]) error {
	if c.json() {
		raws := make([]json.RawMessage, 0, len(items))
		for _, it := range items {
			raw, err := marshal(it)
			if err != nil {
				return err
			}
			raws = append(raws, raw)
		}
		return writeIndented(c.env.stdout, raws)
	}
	return writeTable(c.env.stdout, items, cols)
}

// printItem prints one object: its JSON, or a one-row table.
func printItem[T any](c *call, item T, cols []column[T]) error {
	if c.json() {
		raw, err := marshal(item)
		if err != nil {
			return err
		}
		return writeIndented(c.env.stdout, json.RawMessage(raw))
	}
	return writeTable(c.env.stdout, []T{item}, cols)
}

// printDone reports a call that returns nothing (a deletion): `{}` in JSON (the API's empty answer), else a line.
func printDone(c *call, format string, args ...any) error {
	if c.json() {
		_, err := fmt.Fprintln(c.env.stdout, "{}")
		return err
	}
	_, err := fmt.Fprintf(c.env.stdout, format+"\n", args...)
	return err
}

// writeIndented re-indents with encoding/json: protojson's own output varies its whitespace on purpose.
func writeIndented(w io.Writer, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// writeCompact writes one JSON value on one line (for streams: one event per line).
func writeCompact(w io.Writer, v any) error {
	raw, err := marshal(v)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err = w.Write(b.Bytes())
	return err
}

// streamTable prints rows as they come (audit list --follow): each cell padded to the widest seen so far in its
// column, so that the columns stay aligned as long as the values fit (tabwriter aligns only what it holds).
type streamTable[T any] struct {
	w      io.Writer
	cols   []column[T]
	widths []int
	header bool
}

func (s *streamTable[T]) write(items []T) error {
	var rows [][]string
	if !s.header {
		s.header = true
		heads := make([]string, len(s.cols))
		for i, col := range s.cols {
			heads[i] = col.header
		}
		rows = append(rows, heads)
	}
	for _, it := range items {
		cells := make([]string, len(s.cols))
		for i, col := range s.cols {
			cells[i] = cell(col.value(it))
		}
		rows = append(rows, cells)
	}
	if s.widths == nil {
		s.widths = make([]int, len(s.cols))
	}
	for _, r := range rows {
		for i, v := range r {
			s.widths[i] = max(s.widths[i], utf8.RuneCountInString(v))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, v := range r {
			if i == len(r)-1 {
				b.WriteString(v)
				break
			}
			b.WriteString(v + strings.Repeat(" ", s.widths[i]-utf8.RuneCountInString(v)+2))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(s.w, b.String())
	return err
}

func writeTable[T any](w io.Writer, items []T, cols []column[T]) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	heads := make([]string, len(cols))
	for i, col := range cols {
		heads[i] = col.header
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, it := range items {
		cells := make([]string, len(cols))
		for i, col := range cols {
			cells[i] = cell(col.value(it))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell makes a value safe for one table cell: names and descriptions come from API callers, and a tab, a newline
// or a terminal escape sequence in one must not break the table or reach the reader's terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().Local().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joined(v []string) string { return strings.Join(v, ",") }
