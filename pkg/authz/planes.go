package authz

import (
	"strings"
	"sync"

	accessv1 "github.com/authplane/authplane/gen/go/authplane/access/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

var planes sync.Map // full method -> accessv1.Plane

// PlaneOf returns the plane declared on an RPC (`/pkg.Service/Method`), PLANE_UNSPECIFIED if none is.
func PlaneOf(fullMethod string) accessv1.Plane {
	if p, ok := planes.Load(fullMethod); ok {
		return p.(accessv1.Plane)
	}
	p := lookupPlane(fullMethod)
	planes.Store(fullMethod, p)
	return p
}

func lookupPlane(fullMethod string) accessv1.Plane {
	svc, m, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return accessv1.Plane_PLANE_UNSPECIFIED
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return accessv1.Plane_PLANE_UNSPECIFIED
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return accessv1.Plane_PLANE_UNSPECIFIED
	}
	md := sd.Methods().ByName(protoreflect.Name(m))
	if md == nil || md.Options() == nil {
		return accessv1.Plane_PLANE_UNSPECIFIED
	}
	return proto.GetExtension(md.Options(), accessv1.E_Plane).(accessv1.Plane)
}

// requestTenant reads the request's `tenant_id` field, the tenant a tenant-scoped plane is checked against.
func requestTenant(req any) (string, bool) {
	m, ok := req.(proto.Message)
	if !ok {
		return "", false
	}
	r := m.ProtoReflect()
	f := r.Descriptor().Fields().ByName("tenant_id")
	if f == nil || f.Kind() != protoreflect.StringKind || f.IsList() {
		return "", false
	}
	return r.Get(f).String(), true
}
