package app

import (
	"context"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/platform"
)

// rejectMalformedText refuses a request holding any string that is not valid UTF-8 or holds a NUL byte
// (platform.ValidText) with InvalidArgument naming the field, before authorization and the handler see it.
// PostgreSQL cannot store such text (it answers an error the handler would report as a 500) and SQLite would
// store bytes no client can read back; this interceptor is the one check for every RPC, whether it came over
// gRPC, through the REST gateway or on the in-process connection, and whatever the backend.
//
// Cost, on every call (the token endpoint's included): one pass over the set fields through protoreflect, no
// allocation for a message of scalars, strings, repeated fields and nested messages; each map field costs one
// closure and protoreflect's iteration, about two allocations per entry. A TokenRequest with five parameters
// takes well under a microsecond (BenchmarkMalformedText), against tens of microseconds to sign the token.
func rejectMalformedText(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if field, bad := malformedText(m.ProtoReflect()); bad {
			return nil, apierr.Field(field, "%s must be UTF-8 text without NUL bytes", field)
		}
	}
	return handler(ctx, req)
}

// malformedText finds the first string of m, at any depth, that platform.ValidText refuses, and returns its
// path in proto field names (`client.redirect_uris[1]`, `parameters["scope"]`, `payload.address.city`). The path
// is built only on the way back from a find, so a valid message costs no string building.
func malformedText(m protoreflect.Message) (string, bool) {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		return malformedJSON(m)
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !canHoldText(fd) {
			continue
		}
		if fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated {
			// Get alone (an unset string reads as "", which is fine): Has would cost a second lookup.
			if !platform.ValidText(m.Get(fd).String()) {
				return string(fd.Name()), true
			}
			continue
		}
		if !m.Has(fd) {
			continue
		}
		name := string(fd.Name())
		v := m.Get(fd)
		switch {
		case fd.IsList():
			list := v.List()
			for j := range list.Len() {
				if path, bad := malformedValue(fd, list.Get(j)); bad {
					return join(name+"["+strconv.Itoa(j)+"]", path), true
				}
			}
		case fd.IsMap():
			if path, bad := malformedMap(fd, v.Map()); bad {
				return join(name, path), true
			}
		default:
			if path, bad := malformedValue(fd, v); bad {
				return join(name, path), true
			}
		}
	}
	return "", false
}

// canHoldText tells fields that may hold a string somewhere (strings, messages, maps with a string side) from
// those that cannot (numbers, booleans, enums, bytes), which are skipped without being read.
func canHoldText(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return canHoldText(fd.MapKey()) || canHoldText(fd.MapValue())
	}
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.MessageKind, protoreflect.GroupKind:
		return true
	}
	return false
}

// malformedValue checks one value of a field (or one element of a repeated field): a string, or a message walked
// in turn. An empty path means the value itself.
func malformedValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "", !platform.ValidText(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return malformedText(v.Message())
	}
	return "", false
}

// malformedMap checks every key and value of a map: a bad key is reported as the map, a bad value by its key.
func malformedMap(fd protoreflect.FieldDescriptor, mp protoreflect.Map) (path string, bad bool) {
	keyIsText := fd.MapKey().Kind() == protoreflect.StringKind
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		if keyIsText && !platform.ValidText(k.String()) {
			path, bad = "", true
			return false
		}
		if p, b := malformedValue(fd.MapValue(), v); b {
			path, bad = join("["+strconv.Quote(k.String())+"]", p), true
			return false
		}
		return true
	})
	return path, bad
}

// malformedJSON walks google.protobuf.Struct, Value and ListValue (JSON payloads, such as a user's) with the
// paths a JSON author recognises, `payload.address.city` or `payload.tags[2]`, not the wrappers' field names.
func malformedJSON(m protoreflect.Message) (string, bool) {
	switch x := m.Interface().(type) {
	case *structpb.Struct:
		return malformedStruct(x)
	case *structpb.Value:
		return malformedJSONValue(x)
	case *structpb.ListValue:
		return malformedList(x)
	}
	return malformedText(m) // a dynamic message of the same name: walked as any other
}

func malformedStruct(s *structpb.Struct) (string, bool) {
	for k, v := range s.GetFields() {
		if !platform.ValidText(k) {
			return "", true
		}
		if p, bad := malformedJSONValue(v); bad {
			return join(k, p), true
		}
	}
	return "", false
}

func malformedList(l *structpb.ListValue) (string, bool) {
	for i, v := range l.GetValues() {
		if p, bad := malformedJSONValue(v); bad {
			return join("["+strconv.Itoa(i)+"]", p), true
		}
	}
	return "", false
}

func malformedJSONValue(v *structpb.Value) (string, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return "", !platform.ValidText(k.StringValue)
	case *structpb.Value_StructValue:
		return malformedStruct(k.StructValue)
	case *structpb.Value_ListValue:
		return malformedList(k.ListValue)
	}
	return "", false
}

// join appends a child path: `a` and `b` make `a.b`, `a` and `[1]` make `a[1]`; an empty child leaves `a`.
func join(parent, child string) string {
	switch {
	case child == "":
		return parent
	case parent == "":
		return child
	case child[0] == '[':
		return parent + child
	}
	return parent + "." + child
}
