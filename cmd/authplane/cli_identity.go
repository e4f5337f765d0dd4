package main

import (
	"context"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
)

// The identity plane's commands: pools, their users, and the users' sessions, of the tenant of the identity login
// (a client of the system workspace with scope identity).

func init() {
	register("pool", "list", &clientCommand{summary: "list the identity pools", run: poolList})
	register("pool", "get", &clientCommand{args: "POOL", summary: "show a pool", run: poolGet})
	register("pool", "create", &clientCommand{args: "[POOL]", summary: "create a pool (its id generated when not given)", run: poolCreate})
	register("pool", "delete", &clientCommand{args: "POOL", summary: "delete a pool with all its users", run: poolDelete})

	register("user", "list", &clientCommand{summary: "list a pool's users (--pool)", run: userList})
	register("user", "get", &clientCommand{args: "USER_ID", summary: "show a user (--pool)", run: userGet})
	register("user", "create", &clientCommand{summary: "create a user (--pool), with a password from --password-stdin", run: userCreate})
	register("user", "set-password", &clientCommand{args: "USER_ID", summary: "set a user's password (--pool): prompted, or --password-stdin", run: userSetPassword})
	register("user", "delete", &clientCommand{args: "USER_ID", summary: "delete a user (--pool)", run: userDelete})

	register("session", "list", &clientCommand{args: "USER_ID", summary: "list a user's live sessions (--pool)", run: sessionList})
	register("session", "end", &clientCommand{args: "USER_ID SESSION_ID", summary: "end one session of a user (--pool)", run: sessionEnd})
	register("session", "end-all", &clientCommand{args: "USER_ID", summary: "end every session of a user (--pool)", run: sessionEndAll})
}

// ---- pools

var poolColumns = []column[*poolv1.Pool]{
	{"ID", func(p *poolv1.Pool) string { return p.Id }},
	{"NAME", func(p *poolv1.Pool) string { return p.Name }},
	{"PAYLOAD_SCHEMA", func(p *poolv1.Pool) string { return p.PayloadSchemaId }},
	{"METADATA_SCHEMA", func(p *poolv1.Pool) string { return p.MetadataSchemaId }},
	{"HASHING", func(p *poolv1.Pool) string { return p.GetPasswordSettings().GetHashingMethod() }},
	{"CREATED", func(p *poolv1.Pool) string { return ts(p.CreatedAt) }},
}

func poolList(c *call) error {
	limit := c.limitFlag(0)
	if err := c.parse(0, 0); err != nil {
		return err
	}
	conn, l, err := c.connect(planeIdentity)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := poolv1.NewPoolServiceClient(conn)
	items, err := listAll(c.ctx, *limit, func(ctx context.Context, tok string, size int32) ([]*poolv1.Pool, string, error) {
		r, err := api.ListPools(ctx, &poolv1.ListPoolsRequest{TenantId: l.Tenant, PageSize: size, PageToken: tok})
		return r.GetPools(), r.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	return printItems(c, items, poolColumns)
}

func poolGet(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeIdentity)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := poolv1.NewPoolServiceClient(conn).GetPool(c.ctx, &poolv1.GetPoolRequest{TenantId: l.Tenant, PoolId: c.arg(0)})
	if err != nil {
		return err
	}
	return printItem(c, p, poolColumns)
}

func poolCreate(c *call) error {
	p := &poolv1.Pool{}
	b := newBinder(c, p, "pool (password policy, hashing, lockout…)")
	b.str("name", "name", "the pool's name", func(v string) { p.Name = v })
	b.str("description", "description", "a description", func(v string) { p.Description = v })
	b.str("payload-schema", "payload_schema_id", "the schema users' payload must satisfy", func(v string) { p.PayloadSchemaId = v })
	b.str("metadata-schema", "metadata_schema_id", "the schema users' metadata must satisfy", func(v string) { p.MetadataSchemaId = v })
	if err := c.parse(0, 1); err != nil {
		return err
	}
	if _, err := b.apply(); err != nil {
		return err
	}
	if len(c.args) == 1 {
		p.Id = c.arg(0)
	}
	conn, l, err := c.connect(planeIdentity)
	if err != nil {
		return err
	}
	defer conn.Close()
	out, err := poolv1.NewPoolServiceClient(conn).CreatePool(c.ctx, &poolv1.CreatePoolRequest{TenantId: l.Tenant, Pool: p})
	if err != nil {
		return err
	}
	return printItem(c, out, poolColumns)
}

func poolDelete(c *call) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	conn, l, err := c.connect(planeIdentity)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := poolv1.NewPoolServiceClient(conn).DeletePool(c.ctx, &poolv1.DeletePoolRequest{TenantId: l.Tenant, PoolId: c.arg(0)}); err != nil {
		return err
	}
	return printDone(c, "deleted pool %s", c.arg(0))
}

// ---- users

var userColumns = []column[*poolv1.User]{
	{"ID", func(u *poolv1.User) string { return u.Id }},
	{"STATUS", func(u *poolv1.User) string { return u.Status }},
	{"IDENTIFIERS", func(u *poolv1.User) string {
		ids := make([]string, len(u.Identifiers))
		for i, id := range u.Identifiers {
			ids[i] = id.Type + ":" + id.Identifier
		}
		return joined(ids)
	}},
	{"PASSWORD", func(u *poolv1.User) string { return yesNo(u.HasPassword) }},
	{"LOCKED_UNTIL", func(u *poolv1.User) string { return ts(u.LockedUntil) }},
	{"CREATED", func(u *poolv1.User) string { return ts(u.CreatedAt) }},
}

// identityCall parses a command of a pool's user (--pool required), runs prepare (when not nil: what the command
// reads before it calls, so that bad input is told before any connection) and opens the identity plane for do.
func identityCall(c *call, args int, prepare func() error, do func(conn *identityConn) error) error {
	pool := c.fs.String("pool", "", "the identity pool (required)")
	if err := c.parse(args, args); err != nil {
		return err
	}
	if err := requireFlag("pool", *pool); err != nil {
		return err
	}
	if prepare != nil {
		if err := prepare(); err != nil {
			return err
		}
	}
	conn, l, err := c.connect(planeIdentity)
	if err != nil {
		return err
	}
	defer conn.Close()
	return do(&identityConn{pools: poolv1.NewPoolServiceClient(conn), tokens: tokenv1.NewTokenServiceClient(conn), tenant: l.Tenant, pool: *pool})
}

type identityConn struct {
	pools        poolv1.PoolServiceClient
	tokens       tokenv1.TokenServiceClient
	tenant, pool string
}

func userList(c *call) error {
	limit := c.limitFlag(0)
	return identityCall(c, 0, nil, func(ic *identityConn) error {
		items, err := listAll(c.ctx, *limit, func(ctx context.Context, tok string, size int32) ([]*poolv1.User, string, error) {
			r, err := ic.pools.ListUsers(ctx, &poolv1.ListUsersRequest{TenantId: ic.tenant, PoolId: ic.pool, PageSize: size, PageToken: tok})
			return r.GetUsers(), r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return printItems(c, items, userColumns)
	})
}

func userGet(c *call) error {
	return identityCall(c, 1, nil, func(ic *identityConn) error {
		u, err := ic.pools.GetUser(c.ctx, &poolv1.GetUserRequest{TenantId: ic.tenant, PoolId: ic.pool, UserId: c.arg(0)})
		if err != nil {
			return err
		}
		return printItem(c, u, userColumns)
	})
}

// passwordFlags are how a password is given: --password (visible in the process list, for scripts that must) or
// the first line of standard input.
func passwordFlags(c *call) (flagValue *string, fromStdin *bool) {
	flagValue = c.fs.String("password", "", "the password (other users can see it in the process list: prefer --password-stdin)")
	fromStdin = c.fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	return flagValue, fromStdin
}

func userCreate(c *call) error {
	u := &poolv1.User{}
	b := newBinder(c, u, "user")
	b.str("status", "status", "active (default), inactive or new", func(v string) { u.Status = v })
	b.object("payload", "payload", "the user's payload, checked against the pool's payload schema", func(s *structpb.Struct) { u.Payload = s })
	b.object("metadata", "metadata", "the user's metadata", func(s *structpb.Struct) { u.Metadata = s })
	ids := c.list("identifier", "identifiers as TYPE:VALUE, e.g. email:jane@example.com, mobile:+14155550100, uid:jane")
	password, fromStdin := passwordFlags(c)
	prepare := func() error {
		if *fromStdin && *b.file == "-" {
			return usageErrorf("standard input cannot hold both --file and the password")
		}
		if _, err := b.apply(); err != nil {
			return err
		}
		for _, id := range ids.values {
			typ, value, ok := strings.Cut(id, ":")
			if !ok || typ == "" || value == "" {
				return usageErrorf("--identifier %q is not TYPE:VALUE", id)
			}
			u.Identifiers = append(u.Identifiers, &poolv1.UserIdentifier{Type: typ, Identifier: value})
		}
		if *password != "" || *fromStdin { // a user may be created without a password: no prompt here
			secret, err := readSecret(c, "password", *password, *fromStdin, "", false)
			if err != nil {
				return err
			}
			u.Credentials = append(u.Credentials, &poolv1.UserCredential{Type: "password", Password: secret})
		}
		return nil
	}
	return identityCall(c, 0, prepare, func(ic *identityConn) error {
		out, err := ic.pools.CreateUser(c.ctx, &poolv1.CreateUserRequest{TenantId: ic.tenant, PoolId: ic.pool, User: u})
		if err != nil {
			return err
		}
		return printItem(c, out, userColumns)
	})
}

func userSetPassword(c *call) error {
	password, fromStdin := passwordFlags(c)
	var secret string
	prepare := func() error {
		var err error
		if secret, err = readSecret(c, "new password", *password, *fromStdin, "", true); err != nil {
			return err
		}
		if secret == "" {
			return usageErrorf("no password: give --password-stdin (or run on a terminal to be asked)")
		}
		return nil
	}
	return identityCall(c, 1, prepare, func(ic *identityConn) error {
		if _, err := ic.pools.SetUserPassword(c.ctx, &poolv1.SetUserPasswordRequest{TenantId: ic.tenant, PoolId: ic.pool, UserId: c.arg(0), Password: secret}); err != nil {
			return err
		}
		return printDone(c, "set the password of user %s; the user's sessions ended", c.arg(0))
	})
}

func userDelete(c *call) error {
	return identityCall(c, 1, nil, func(ic *identityConn) error {
		if _, err := ic.pools.DeleteUser(c.ctx, &poolv1.DeleteUserRequest{TenantId: ic.tenant, PoolId: ic.pool, UserId: c.arg(0)}); err != nil {
			return err
		}
		return printDone(c, "deleted user %s", c.arg(0))
	})
}

// ---- sessions

var sessionColumns = []column[*tokenv1.Session]{
	{"ID", func(s *tokenv1.Session) string { return s.Id }},
	{"KIND", func(s *tokenv1.Session) string { return s.Kind }},
	{"CLIENT_ID", func(s *tokenv1.Session) string { return s.ClientId }},
	{"WORKSPACE", func(s *tokenv1.Session) string { return s.AuthorizationServerId }},
	{"CREATED", func(s *tokenv1.Session) string { return ts(s.CreatedAt) }},
	{"LAST_USED", func(s *tokenv1.Session) string { return ts(s.LastUsedAt) }},
	{"EXPIRES", func(s *tokenv1.Session) string { return ts(s.ExpiresAt) }},
}

func sessionList(c *call) error {
	limit := c.limitFlag(0)
	return identityCall(c, 1, nil, func(ic *identityConn) error {
		items, err := listAll(c.ctx, *limit, func(ctx context.Context, tok string, size int32) ([]*tokenv1.Session, string, error) {
			r, err := ic.tokens.ListUserSessions(ctx, &tokenv1.ListUserSessionsRequest{TenantId: ic.tenant, PoolId: ic.pool, UserId: c.arg(0), PageSize: size, PageToken: tok})
			return r.GetSessions(), r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		return printItems(c, items, sessionColumns)
	})
}

func sessionEnd(c *call) error {
	return identityCall(c, 2, nil, func(ic *identityConn) error {
		if _, err := ic.tokens.DeleteUserSession(c.ctx, &tokenv1.DeleteUserSessionRequest{TenantId: ic.tenant, PoolId: ic.pool, UserId: c.arg(0), SessionId: c.arg(1)}); err != nil {
			return err
		}
		return printDone(c, "ended session %s of user %s", c.arg(1), c.arg(0))
	})
}

func sessionEndAll(c *call) error {
	return identityCall(c, 1, nil, func(ic *identityConn) error {
		if _, err := ic.tokens.DeleteUserSessions(c.ctx, &tokenv1.DeleteUserSessionsRequest{TenantId: ic.tenant, PoolId: ic.pool, UserId: c.arg(0)}); err != nil {
			return err
		}
		return printDone(c, "ended every session of user %s", c.arg(0))
	})
}
