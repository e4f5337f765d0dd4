package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// binder ties flags to the fields of a message to create or update: a file (--file, the API's JSON) gives the
// message first, then each flag given sets its field over it. The fields set this way are the update mask, so an
// update changes exactly what the command line names (an empty mask would mean every field).
type binder struct {
	c     *call
	msg   proto.Message
	file  *string
	binds []binding
}

type binding struct {
	flag, field string
	set         func() error
}

func newBinder(c *call, msg proto.Message, what string) *binder {
	b := &binder{c: c, msg: msg}
	b.file = c.fs.String("file", "", "read the "+what+" from this file of the API's JSON ('-': standard input); flags override it")
	return b
}

func (b *binder) str(name, field, usage string, set func(string)) {
	v := b.c.fs.String(name, "", usage)
	b.binds = append(b.binds, binding{name, field, func() error { set(*v); return nil }})
}

func (b *binder) strs(name, field, usage string, set func([]string)) {
	l := b.c.list(name, usage)
	b.binds = append(b.binds, binding{name, field, func() error { set(l.values); return nil }})
}

func (b *binder) boolean(name, field, usage string, set func(bool)) {
	v := b.c.fs.Bool(name, false, usage)
	b.binds = append(b.binds, binding{name, field, func() error { set(*v); return nil }})
}

func (b *binder) duration(name, field, usage string, set func(*durationpb.Duration)) {
	v := b.c.fs.Duration(name, 0, usage+" (e.g. 15m, 720h)")
	b.binds = append(b.binds, binding{name, field, func() error {
		if *v < 0 {
			return usageErrorf("--%s must not be negative", name)
		}
		set(durationpb.New(*v))
		return nil
	}})
}

// object is a flag holding a JSON object (a user's payload or metadata).
func (b *binder) object(name, field, usage string, set func(*structpb.Struct)) {
	v := b.c.fs.String(name, "", usage+" (a JSON object)")
	b.binds = append(b.binds, binding{name, field, func() error {
		var s structpb.Struct
		if err := protojson.Unmarshal([]byte(*v), &s); err != nil {
			return usageErrorf("--%s is not a JSON object: %v", name, err)
		}
		set(&s)
		return nil
	}})
}

// apply fills the message (after parse) and returns the names of the fields it set.
func (b *binder) apply() ([]string, error) {
	var mask []string
	if *b.file != "" {
		fields, err := readMessageFile(b.c, *b.file, b.msg)
		if err != nil {
			return nil, err
		}
		mask = fields
	}
	given := b.c.visited()
	for _, bd := range b.binds {
		if !given[bd.flag] {
			continue
		}
		if err := bd.set(); err != nil {
			return nil, err
		}
		if !slices.Contains(mask, bd.field) {
			mask = append(mask, bd.field)
		}
	}
	return mask, nil
}

// readMessageFile reads a message from a file of the API's JSON and returns its top-level fields by proto name.
func readMessageFile(c *call, path string, msg proto.Message) ([]string, error) {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(c.env.stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usageErrorf("--file: %v", err)
	}
	if err := protojson.Unmarshal(raw, msg); err != nil {
		return nil, usageErrorf("--file %s: %v", path, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, usageErrorf("--file %s: %v", path, err)
	}
	fields := msg.ProtoReflect().Descriptor().Fields()
	var names []string
	for k := range top {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd != nil {
			names = append(names, string(fd.Name()))
		}
	}
	slices.Sort(names)
	return names, nil
}

// limitFlag bounds how many items a list prints; 0 is all of them.
func (c *call) limitFlag(def int) *int {
	return c.fs.Int("limit", def, "print at most this many (0: all)")
}

// listAll follows next_page_token until the list ends or limit items (0: no limit) were read.
func listAll[T any](ctx context.Context, limit int, fetch func(ctx context.Context, pageToken string, pageSize int32) ([]T, string, error)) ([]T, error) {
	if limit < 0 {
		return nil, usageErrorf("--limit must not be negative")
	}
	var all []T
	token := ""
	for {
		size := int32(500)
		if limit > 0 && limit-len(all) < int(size) {
			size = int32(limit - len(all))
		}
		items, next, err := fetch(ctx, token, size)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" || (limit > 0 && len(all) >= limit) {
			break
		}
		token = next
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// parseTime reads a --since/--until value: RFC 3339, or a duration before now (1h).
func parseTime(now time.Time, flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErrorf("--%s must be an RFC 3339 time (2025-01-31T10:00:00Z) or a duration before now (1h), not %q", flag, v)
}

func requireFlag(name, value string) error {
	if value == "" {
		return usageErrorf("--%s is required", name)
	}
	return nil
}
