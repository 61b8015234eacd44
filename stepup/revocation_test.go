package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
)

// The revocation record's races (a request in flight across Drop or
// DropAll, on the memory store and on Redis) and its failures are tested
// at the repository's root, through real step-ups.

func TestElevationIDsCannotBeSessionTokens(t *testing.T) {
	t.Parallel()
	id := newElevationID()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "session="+id)
	if c, err := r.Cookie("session"); err == nil && c.Value == id {
		t.Errorf("the elevation id %q can be sent as a session cookie", id)
	}
}

// TestRevocationCovers decides, on plain values, which elevations a
// subject's revocation record ends, at each boundary.
func TestRevocationCovers(t *testing.T) {
	t.Parallel()
	const at = int64(1_800_000_000)
	sidA, sidB := sidTag(testIssuer, "session-a"), sidTag(testIssuer, "session-b")
	rv := &revocations{
		opCut: 3, opTime: at,
		idpCut: at - 100, idpCause: ReasonCredentialChange,
		sids:  []sidRevocation{{sidTag: sidA, cut: at, cause: ReasonBackChannelLogout, until: at + 600}},
		drops: []dropRevocation{{id: "E;dropped", until: at + 600}},
	}
	for _, tc := range []struct {
		name  string
		h     elevationHead
		cause Reason
	}{
		{"Dropped", elevationHead{id: "E;dropped", generation: 4, authTime: at + 50}, ReasonRevoked},
		{"OtherElevationOfTheSameUser", elevationHead{id: "E;other", generation: 4, authTime: at + 50}, ""},
		{"GrantedBeforeAnOperatorRevocation", elevationHead{id: "E;x", generation: 2, authTime: at + 50}, ReasonRevokedByOperator},
		{"GrantedAtGenerationZero", elevationHead{id: "E;x", generation: 0, authTime: at + 50}, ReasonRevokedByOperator},
		{"GrantedAfterTheOperatorRevocation", elevationHead{id: "E;x", generation: 3, authTime: at + 50}, ""},
		{"LoginBeforeTheCredentialChange", elevationHead{id: "E;x", generation: 4, authTime: at - 101}, ReasonCredentialChange},
		{"LoginAtTheCredentialChange", elevationHead{id: "E;x", generation: 4, authTime: at - 100}, ReasonCredentialChange},
		{"LoginASecondAfterTheCredentialChange", elevationHead{id: "E;x", generation: 4, authTime: at - 99}, ""},
		{"LoggedOutSession", elevationHead{id: "E;x", generation: 4, sidTag: sidA, authTime: at - 5}, ReasonBackChannelLogout},
		{"LoggedOutSessionAtTheLogout", elevationHead{id: "E;x", generation: 4, sidTag: sidA, authTime: at}, ReasonBackChannelLogout},
		{"SameSidLoginASecondAfterTheLogout", elevationHead{id: "E;x", generation: 4, sidTag: sidA, authTime: at + 1}, ""},
		{"AnotherSessionOfTheSameUser", elevationHead{id: "E;x", generation: 4, sidTag: sidB, authTime: at - 5}, ""},
		{"NoSidIsNotASid", elevationHead{id: "E;x", generation: 4, authTime: at - 5}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cause, covered := rv.covers(tc.h)
			if cause != tc.cause || covered != (tc.cause != "") {
				t.Errorf("%q %v, want %q", cause, covered, tc.cause)
			}
		})
	}
}

func TestRevocationRecordRoundTripsAndPrunes(t *testing.T) {
	t.Parallel()
	rv := &revocations{
		opCut: 9, opTime: 1_800_000_000, idpCut: 1_799_999_000, idpCause: ReasonAssuranceLowered,
		sids: []sidRevocation{
			{sidTag: sidTag(testIssuer, "a"), cut: 1_800_000_010, cause: ReasonSessionRevoked, until: 1_800_000_600},
			{sidTag: sidTag(testIssuer, "b"), cut: 1_800_000_020, cause: ReasonBackChannelLogout, until: 1_800_009_000},
		},
		drops: []dropRevocation{{id: newElevationID(), until: 1_800_000_300}, {id: newElevationID(), until: 1_800_009_000}},
		until: 1_800_009_000,
	}
	got, err := decodeRevocations(encodeRevocations(rv))
	if err != nil || !reflect.DeepEqual(got, rv) {
		t.Fatalf("round trip: %+v, %v\nwant %+v", got, err, rv)
	}
	got.prune(1_800_000_600)
	if len(got.sids) != 1 || got.sids[0].cause != ReasonBackChannelLogout || len(got.drops) != 1 || got.drops[0].id != rv.drops[1].id {
		t.Errorf("pruned at 1_800_000_600: %+v", got)
	}
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"Empty", ""},
		{"UnknownFormat", "r2"},
		{"TooFewFields", "r1\x1f\x1f\x1f\x1f\x1f\x1f"},
		{"CutWithoutACause", "r1\x1f1\x1f\x1f\x1f5\x1f\x1f\x1f"},
		{"UnknownCause", "r1\x1f1\x1f\x1f\x1f5\x1fz\x1f\x1f"},
		{"SidEntryWithoutUntil", "r1\x1f1\x1f\x1f\x1f\x1f\x1fsid:1:b\x1f"},
		{"DropEntryWithoutUntil", "r1\x1f1\x1f\x1f\x1f\x1f\x1f\x1fid-without-until"},
		{"FieldAppended", "r1\x1f1\x1f\x1f\x1f\x1f\x1f\x1f\x1fextra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeRevocations(tc.bad); err == nil {
				t.Errorf("decodeRevocations(%q) accepted", tc.bad)
			}
		})
	}
}

// TestGrantRacingARevocationDoesNotSurviveIt runs grants and revocations of
// one user concurrently on a memstore shared by two StepUp values (two
// replicas in one process): whichever order they land in, no elevation
// whose login preceded an IdP logout of its session, and none granted
// before an operator revocation, is honoured afterwards; and every
// revocation is kept (none overwrites another).
func TestGrantRacingARevocationDoesNotSurviveIt(t *testing.T) {
	t.Parallel()
	a := newHarness(t)
	b := newHarness(t, func(c *Config) { c.SessionManager = a.sm })
	ctx := context.Background()
	const n = 64
	type grant struct {
		h   elevationHead
		sid string
	}
	grants := make([]grant, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			su := []*StepUp{a.su, b.su}[i%2]
			el := a.elevation(t0.Add(time.Hour))
			el.ID = newElevationID()
			el.AuthTime = t0.Add(-time.Duration(i%3) * time.Second)
			sid := fmt.Sprintf("session-%d", i%8)
			el.sidTag = sidTag(testIssuer, sid)
			if cause, err := su.registerGrant(ctx, &el, sid); err != nil {
				t.Error(err)
			} else if cause == "" {
				h, _ := readElevationHead(encodeElevation(&el))
				grants[i] = grant{h, sid}
			}
		}()
		go func() {
			defer wg.Done()
			su := []*StepUp{b.su, a.su}[i%2]
			var err error
			switch i % 4 {
			case 0:
				_, err = su.revokeIdP(ctx, "", fmt.Sprintf("session-%d", i%8), t0.Unix(), ReasonBackChannelLogout)
			case 1:
				_, err = su.revokeIdP(ctx, "alice", fmt.Sprintf("session-%d", i%8), t0.Unix(), ReasonSessionRevoked)
			case 2:
				err = su.revokeOperator(ctx, "alice")
			case 3:
				err = su.recordDrop(ctx, elevationHead{id: fmt.Sprintf("E;drop-%d", i), subject: "alice", deadline: t0.Add(time.Hour).Unix()})
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	cur, found, err := a.su.findRecord(ctx, a.su.subjectKey("alice"))
	if err != nil || !found {
		t.Fatalf("no record: %v", err)
	}
	rv, err := decodeRevocations(cur)
	if err != nil {
		t.Fatal(err)
	}
	life, found, err := a.su.findRecord(ctx, a.su.lifetimeKey("alice"))
	if err != nil || !found {
		t.Fatalf("no lifetime record: %v", err)
	}
	l, err := decodeLifetime(life)
	if err != nil {
		t.Fatal(err)
	}
	if l.generation != n/4 || rv.opCut != n/4 || len(rv.drops) != n/4 {
		t.Errorf("generation %d, cut %d, %d drops: want %d of each (a revocation was lost)", l.generation, rv.opCut, len(rv.drops), n/4)
	}
	if l.until < rv.until {
		t.Errorf("the lifetime record ends at %d, before the revocation record (%d)", l.until, rv.until)
	}
	// Sessions 0, 1, 4 and 5 were logged out at t0, and every login was at
	// or before t0: whatever the order, none of their grants survives. Of
	// the others, exactly those that read the record after the last
	// operator revocation survive.
	loggedOut := map[string]bool{"session-0": true, "session-1": true, "session-4": true, "session-5": true}
	for i, g := range grants {
		if g.h.id == "" {
			continue
		}
		want := loggedOut[g.sid] || g.h.generation < l.generation
		for _, su := range []*StepUp{a.su, b.su} {
			if _, _, revoked, err := su.revokedBy(ctx, g.h); err != nil || revoked != want {
				t.Errorf("grant %d (%s, generation %d of %d): revoked %v, want %v (%v)", i, g.sid, g.h.generation, l.generation, revoked, want, err)
			}
		}
	}
}

// TestLogoutBeforeTheGrantRefusesIt: a back-channel logout naming only
// sid arrives while the user is still at the IdP, before any grant from
// that session: the grant that follows is refused, and a login after the
// logout is not.
func TestLogoutBeforeTheGrantRefusesIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if sub, err := h.su.revokeIdP(ctx, "", "sid-1", t0.Unix(), ReasonBackChannelLogout); err != nil || sub != "" {
		t.Fatalf("revokeIdP: %q %v", sub, err)
	}
	el := h.elevation(t0.Add(time.Hour))
	el.AuthTime = t0
	if cause, err := h.su.registerGrant(ctx, &el, "sid-1"); err != nil || cause != ReasonBackChannelLogout {
		t.Errorf("login at the logout: %q %v, want backchannel_logout", cause, err)
	}
	el.AuthTime = t0.Add(time.Second)
	if cause, err := h.su.registerGrant(ctx, &el, "sid-1"); err != nil || cause != "" {
		t.Errorf("login a second after the logout: %q %v, want granted", cause, err)
	}
}

// TestOperatorRevocationUsesNoClock: replicas whose clocks disagree by the
// skew revoke and grant; the generation alone decides.
func TestOperatorRevocationUsesNoClock(t *testing.T) {
	t.Parallel()
	a := newHarness(t)
	b := newHarness(t, func(c *Config) { c.SessionManager = a.sm })
	b.setClock(t0.Add(-30 * time.Second)) // b runs 30s slow
	ctx := context.Background()
	before := a.elevation(t0.Add(time.Hour))
	before.AuthTime = t0.Add(-time.Minute)
	if cause, err := b.su.registerGrant(ctx, &before, ""); err != nil || cause != "" {
		t.Fatalf("grant: %q %v", cause, err)
	}
	if err := a.su.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	after := a.elevation(t0.Add(time.Hour))
	after.ID, after.AuthTime = newElevationID(), t0.Add(time.Second)
	if cause, err := b.su.registerGrant(ctx, &after, ""); err != nil || cause != "" {
		t.Fatalf("grant after: %q %v", cause, err)
	}
	for name, el := range map[string]Elevation{"before": before, "after": after} {
		hd, _ := readElevationHead(encodeElevation(&el))
		_, cause, revoked, err := b.su.revokedBy(ctx, hd)
		if err != nil || revoked != (name == "before") {
			t.Errorf("%s the revocation: %q %v %v", name, cause, revoked, err)
		}
	}
	// A step-up under way whose login is more than the skew older than the
	// revocation is refused when its callback arrives.
	late := a.elevation(t0.Add(time.Hour))
	late.ID, late.AuthTime = newElevationID(), t0.Add(-31*time.Second)
	if cause, err := a.su.registerGrant(ctx, &late, ""); err != nil || cause != ReasonRevokedByOperator {
		t.Errorf("in-flight grant: %q %v, want revoked_by_operator", cause, err)
	}
}

// storedUntil returns the expiry the store holds for key, as the codec
// wrote it, or false when there is none.
func storedUntil(t *testing.T, h *harness, key string) (time.Time, bool) {
	t.Helper()
	b, found, err := h.sm.Store.Find(key)
	if err != nil || !found {
		return time.Time{}, false
	}
	until, _, err := h.sm.Codec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return until, true
}

// TestRevocationRecordsExpireWithTheirLastElevation: every record a
// revocation or a grant writes is stored with an expiry, at the deadline
// of the last elevation it can cover (or, for a step-up that may still be
// at the IdP, a challenge's lifetime plus the skew), so the store does not
// grow without bound.
func TestRevocationRecordsExpireWithTheirLastElevation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	inFlight := t0.Add(challengeTTL + DefaultClockSkew)

	el := h.elevation(t0.Add(2 * time.Hour))
	el.ID, el.AuthTime = newElevationID(), t0
	if cause, err := h.su.registerGrant(ctx, &el, "sid-1"); err != nil || cause != "" {
		t.Fatalf("grant: %q %v", cause, err)
	}
	if until, ok := storedUntil(t, h, h.su.lifetimeKey("alice")); !ok || !until.Equal(el.Deadline) {
		t.Errorf("lifetime record until %v, want the deadline %v", until, el.Deadline)
	}
	if until, ok := storedUntil(t, h, h.su.sidKey("sid-1")); !ok || !until.Equal(el.Deadline) {
		t.Errorf("sid index until %v, want the deadline %v", until, el.Deadline)
	}
	if _, ok := storedUntil(t, h, h.su.subjectKey("alice")); ok {
		t.Error("a grant wrote a revocation record: the guard would decode it on every request")
	}

	if _, err := h.su.revokeIdP(ctx, "alice", "sid-1", t0.Unix(), ReasonBackChannelLogout); err != nil {
		t.Fatal(err)
	}
	if until, ok := storedUntil(t, h, h.su.subjectKey("alice")); !ok || !until.Equal(el.Deadline) {
		t.Errorf("revocation record until %v, want the covered elevation's deadline %v", until, el.Deadline)
	}

	// A revocation for a user with no elevation lives only as long as a
	// step-up under way could.
	if err := h.su.revokeOperator(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if until, ok := storedUntil(t, h, h.su.subjectKey("bob")); !ok || !until.Equal(inFlight) {
		t.Errorf("bob's record until %v, want %v", until, inFlight)
	}
	if _, err := h.su.revokeIdP(ctx, "", "sid-never-granted", t0.Unix(), ReasonBackChannelLogout); err != nil {
		t.Fatal(err)
	}
	if until, ok := storedUntil(t, h, h.su.sidKey("sid-never-granted")); !ok || !until.Equal(inFlight) {
		t.Errorf("unknown sid's index until %v, want %v", until, inFlight)
	}

	// A processed token's jti is kept as long as the token could be
	// accepted: five minutes after its iat, plus twice the skew.
	if err := h.su.processOnce(ctx, h.su.tokenKey("jti-1"), t0.Unix(), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	want := t0.Add(maxSignalAge + 2*DefaultClockSkew + time.Second)
	if until, ok := storedUntil(t, h, h.su.tokenKey("jti-1")); !ok || !until.Equal(want) {
		t.Errorf("jti record until %v, want %v", until, want)
	}

	// Entries for one session or one drop are pruned with their last
	// elevation, at the next write.
	head, _ := readElevationHead(encodeElevation(&el))
	if err := h.su.recordDrop(ctx, head); err != nil {
		t.Fatal(err)
	}
	h.setClock(el.Deadline.Add(time.Second))
	if err := h.su.revokeOperator(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	cur, _, err := h.su.findRecord(ctx, h.su.subjectKey("alice"))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := decodeRevocations(cur)
	if err != nil || len(rv.sids) != 0 || len(rv.drops) != 0 {
		t.Errorf("after the last deadline: %+v, %v; want the sid and drop entries pruned", rv, err)
	}
}

// TestSecondOperatorRevocationAfterTheFirstRecordExpired: support revokes
// alice, she steps up again (her elevation records the generation after
// the revocation), the first revocation's record expires, and support
// revokes her again. The second revocation must end the new elevation:
// the generation may not start over while an elevation that carries it
// is alive.
func TestSecondOperatorRevocationAfterTheFirstRecordExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if err := h.su.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute)
	el := h.elevation(h.Now().Add(2 * time.Hour))
	el.ID, el.AuthTime = newElevationID(), h.Now()
	if cause, err := h.su.registerGrant(ctx, &el, ""); err != nil || cause != "" {
		t.Fatalf("grant after the first revocation: %q %v", cause, err)
	}
	// The first revocation's record expires with the step-ups it could
	// still refuse, long before the new elevation ends.
	if err := h.sm.Store.Delete(h.su.subjectKey("alice")); err != nil {
		t.Fatal(err)
	}
	h.advance(15 * time.Minute)
	if err := h.su.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	head, _ := readElevationHead(encodeElevation(&el))
	if _, _, revoked, err := h.su.revokedBy(ctx, head); err != nil || !revoked {
		t.Fatalf("the second revocation left the elevation granted between the two: revoked %v, %v", revoked, err)
	}
}

// replicatingStore is a memstore that is a ReplicatedStore: it counts the
// writes made through Update and through UpdateReplicated, and fails the
// latter while failReplicas is set, as a Redis whose replicas did not
// acknowledge in time.
type replicatingStore struct {
	*memstore.MemStore
	mu           sync.Mutex
	plain        int
	replicated   int
	failReplicas atomic.Bool
}

var errNoReplica = errors.New("test: no replica acknowledged the write")

func (s *replicatingStore) Update(ctx context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plain++
	return s.apply(token, update)
}

func (s *replicatingStore) UpdateReplicated(ctx context.Context, token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicated++
	if err := s.apply(token, update); err != nil {
		return err
	}
	if s.failReplicas.Load() {
		return errNoReplica // the primary holds it; a failover may not
	}
	return nil
}

func (s *replicatingStore) apply(token string, update func([]byte, bool) ([]byte, time.Time, error)) error {
	cur, found, err := s.Find(token)
	if err != nil {
		return err
	}
	next, expiry, err := update(cur, found)
	if err != nil {
		return err
	}
	return s.Commit(token, next, expiry)
}

func (s *replicatingStore) counts() (plain, replicated int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plain, s.replicated
}

// TestRevocationsWaitForReplicasAndGrantsDoNot: on a store that can wait
// for its replicas (Redis WAIT), every write of a revocation goes through
// UpdateReplicated, so that a failover cannot lose a revocation the IdP or
// the operator was told was recorded; a grant's writes do not wait. When
// the replicas do not acknowledge, the revocation fails as a store
// failure would: RevokeSubject returns ErrSession and audits
// revocation_failed.
func TestRevocationsWaitForReplicasAndGrantsDoNot(t *testing.T) {
	t.Parallel()
	store := &replicatingStore{MemStore: memstore.NewWithCleanupInterval(0)}
	h := newHarness(t, func(c *Config) {
		c.SessionManager = scs.New()
		c.SessionManager.Store = store
	})
	h.sm = h.cfg.SessionManager
	ctx := context.Background()

	el := h.elevation(t0.Add(time.Hour))
	el.ID = newElevationID()
	if cause, err := h.su.registerGrant(ctx, &el, "sid-1"); err != nil || cause != "" {
		t.Fatalf("grant: %q %v", cause, err)
	}
	if plain, replicated := store.counts(); plain == 0 || replicated != 0 {
		t.Fatalf("a grant made %d plain and %d replicated writes, want only plain ones", plain, replicated)
	}

	for name, revoke := range map[string]func() error{
		"RevokeSubject": func() error { return h.su.RevokeSubject(ctx, "alice") },
		"LogoutBySid": func() error {
			_, err := h.su.revokeIdP(ctx, "", "sid-1", t0.Unix(), ReasonBackChannelLogout)
			return err
		},
		"LogoutBySub": func() error {
			_, err := h.su.revokeIdP(ctx, "alice", "", t0.Unix(), ReasonCredentialChange)
			return err
		},
		"DropRecord": func() error {
			return h.su.recordDrop(ctx, elevationHead{id: el.ID, subject: "alice", deadline: el.Deadline.Unix()})
		},
	} {
		plainBefore, replicatedBefore := store.counts()
		if err := revoke(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plain, replicated := store.counts()
		if plain != plainBefore || replicated == replicatedBefore {
			t.Errorf("%s made %d plain and %d replicated writes, want only replicated ones", name, plain-plainBefore, replicated-replicatedBefore)
		}
	}

	store.failReplicas.Store(true)
	h.audit.Reset()
	if err := h.su.RevokeSubject(ctx, "alice"); !errors.Is(err, ErrSession) || !errors.Is(err, errNoReplica) {
		t.Errorf("RevokeSubject without a replica's acknowledgement: %v, want ErrSession wrapping the store's error", err)
	}
	if got := h.audit.Types(); len(got) != 1 || got[0] != EventRevocationFailed {
		t.Errorf("audit %v, want revocation_failed", got)
	}
}
