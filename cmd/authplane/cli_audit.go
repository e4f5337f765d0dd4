package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
)

func init() {
	register("audit", "list", &clientCommand{summary: "list audit events, newest first; --follow prints new ones as they come", run: auditList})
}

var auditColumns = []column[*tenantv1.AuditEvent]{
	{"TIME", func(e *tenantv1.AuditEvent) string { return ts(e.Time) }},
	{"ACTION", func(e *tenantv1.AuditEvent) string { return e.Action }},
	{"OUTCOME", func(e *tenantv1.AuditEvent) string { return e.Outcome }},
	{"ACTOR", func(e *tenantv1.AuditEvent) string {
		a := e.GetActor()
		s := a.GetAuthorizationServerId() + "/" + a.GetClientId()
		if a.GetSub() != "" && a.GetSub() != a.GetClientId() {
			s += " sub=" + a.GetSub()
		}
		return strings.Trim(s, "/")
	}},
	{"RESOURCE", func(e *tenantv1.AuditEvent) string {
		return strings.Trim(e.GetResource().GetType()+"/"+e.GetResource().GetId(), "/")
	}},
	{"CHANGED", func(e *tenantv1.AuditEvent) string { return joined(e.ChangedFields) }},
	{"REQUEST_ID", func(e *tenantv1.AuditEvent) string { return e.RequestId }},
}

// followWindow is how far back --follow looks again on every poll: an event's id and time are taken before its
// transaction commits, so an event may appear after a newer one was already seen. Events seen within the window
// are remembered and printed once.
const followWindow = 30 * time.Second

type auditPager func(ctx context.Context, pageToken string, pageSize int32, since time.Time) ([]*tenantv1.AuditEvent, string, error)

func auditList(c *call) error {
	operator := c.fs.Bool("operator", false, "the operator's trail (tenants created, changed, deleted; operator login) instead of the tenant's (admin login)")
	action := c.fs.String("action", "", "only this action (TenantService.CreateTenant), or a prefix ending in '.' (WorkspaceService.)")
	actor := c.fs.String("actor", "", "only events of this client_id or sub")
	resourceType := c.fs.String("resource-type", "", "only events about this kind of resource (tenant, client, …)")
	resourceID := c.fs.String("resource-id", "", "only events about this resource id")
	sinceFlag := c.fs.String("since", "", "only events at or after this time (RFC 3339, or a duration before now: 1h)")
	untilFlag := c.fs.String("until", "", "only events before this time (not with --follow)")
	limit := c.limitFlag(50)
	follow := c.fs.Bool("follow", false, "after the latest events (oldest first), print new ones as they come until interrupted; JSON is one event per line")
	interval := c.fs.Duration("interval", 2*time.Second, "how often --follow asks for new events")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	now := c.env.now()
	since, err := parseTime(now, "since", *sinceFlag)
	if err != nil {
		return err
	}
	until, err := parseTime(now, "until", *untilFlag)
	if err != nil {
		return err
	}
	if *follow && !until.IsZero() {
		return usageErrorf("--follow prints events as they come: it takes no --until")
	}
	if *interval <= 0 {
		return usageErrorf("--interval must be positive")
	}
	pl := planeAdmin
	if *operator {
		pl = planeOperator
	}
	conn, l, err := c.connect(pl)
	if err != nil {
		return err
	}
	defer conn.Close()
	api := tenantv1.NewTenantServiceClient(conn)
	stamp := func(t time.Time) *timestamppb.Timestamp {
		if t.IsZero() {
			return nil
		}
		return timestamppb.New(t)
	}
	var page auditPager = func(ctx context.Context, tok string, size int32, since time.Time) ([]*tenantv1.AuditEvent, string, error) {
		var r *tenantv1.ListAuditEventsResponse
		var err error
		if *operator {
			r, err = api.ListOperatorAuditEvents(ctx, &tenantv1.ListOperatorAuditEventsRequest{PageSize: size, PageToken: tok,
				Action: *action, Actor: *actor, ResourceType: *resourceType, ResourceId: *resourceID, Since: stamp(since), Until: stamp(until)})
		} else {
			r, err = api.ListAuditEvents(ctx, &tenantv1.ListAuditEventsRequest{TenantId: l.Tenant, PageSize: size, PageToken: tok,
				Action: *action, Actor: *actor, ResourceType: *resourceType, ResourceId: *resourceID, Since: stamp(since), Until: stamp(until)})
		}
		return r.GetAuditEvents(), r.GetNextPageToken(), err
	}
	fetch := func(limit int, since time.Time) ([]*tenantv1.AuditEvent, error) {
		return listAll(c.ctx, limit, func(ctx context.Context, tok string, size int32) ([]*tenantv1.AuditEvent, string, error) {
			return page(ctx, tok, size, since)
		})
	}
	latest, err := fetch(*limit, since)
	if err != nil {
		return err
	}
	if !*follow {
		return printItems(c, latest, auditColumns)
	}
	return followAudit(c, latest, since, *interval, fetch)
}

// followAudit prints the latest events oldest first, then polls for newer ones until the command's context ends
// (an interrupt), which is a normal end (exit 0).
func followAudit(c *call, latest []*tenantv1.AuditEvent, since time.Time, interval time.Duration,
	fetch func(limit int, since time.Time) ([]*tenantv1.AuditEvent, error)) error {
	slices.Reverse(latest)
	seen := map[string]time.Time{}
	var newest time.Time
	table := &streamTable[*tenantv1.AuditEvent]{w: c.env.stdout, cols: auditColumns}
	emit := func(events []*tenantv1.AuditEvent) error {
		for _, e := range events {
			seen[e.Id] = e.Time.AsTime()
			if e.Time.AsTime().After(newest) {
				newest = e.Time.AsTime()
			}
		}
		if len(events) == 0 {
			return nil
		}
		if c.json() {
			for _, e := range events {
				if err := writeCompact(c.env.stdout, e); err != nil {
					return err
				}
			}
			return nil
		}
		return table.write(events)
	}
	if err := emit(latest); err != nil {
		return err
	}
	// Events of the window that --limit left out are not new: mark them seen without printing them.
	if len(latest) > 0 {
		last := latest[len(latest)-1].Id
		older, err := fetch(0, windowStart(since, newest))
		if err != nil {
			return err
		}
		for _, e := range older {
			if e.Id <= last {
				seen[e.Id] = e.Time.AsTime()
			}
		}
	}
	fmt.Fprintln(c.env.stderr, "authplane: following new audit events; interrupt to stop")
	for {
		select {
		case <-c.ctx.Done():
			return nil
		case <-time.After(interval):
		}
		events, err := fetch(0, windowStart(since, newest))
		if err != nil {
			if c.ctx.Err() != nil {
				return nil
			}
			return err
		}
		var fresh []*tenantv1.AuditEvent
		for _, e := range events {
			if _, ok := seen[e.Id]; !ok {
				fresh = append(fresh, e)
			}
		}
		slices.SortFunc(fresh, func(a, b *tenantv1.AuditEvent) int { return strings.Compare(a.Id, b.Id) })
		if err := emit(fresh); err != nil {
			return err
		}
		for id, t := range seen {
			if t.Before(newest.Add(-followWindow)) {
				delete(seen, id)
			}
		}
	}
}

// windowStart is where a poll starts: followWindow before the newest event seen, never before --since.
func windowStart(since, newest time.Time) time.Time {
	if newest.IsZero() {
		return since
	}
	start := newest.Add(-followWindow)
	if start.Before(since) {
		return since
	}
	return start
}
