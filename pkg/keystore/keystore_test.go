package keystore_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/authplane/authplane/pkg/db"
	"github.com/authplane/authplane/pkg/keystore"
	"github.com/authplane/authplane/pkg/secrets"
	"github.com/authplane/authplane/pkg/testenv"
)

func master(t *testing.T, fill byte) *secrets.MasterKey {
	t.Helper()
	m, err := secrets.NewMasterKey(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(current *secrets.MasterKey, previous ...*secrets.MasterKey) keystore.MasterKeys {
	return keystore.MasterKeys{Current: current, Previous: previous}
}

func open(t *testing.T, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func mustOpen(t *testing.T, d *db.DB, k keystore.MasterKeys) *secrets.Keyring {
	t.Helper()
	kr, err := keystore.Open(context.Background(), d, k, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return kr
}

// sameKeys reports whether two keyrings hash, derive and seal alike.
func sameKeys(a, b *secrets.Keyring) bool {
	_, err := b.Open(a.Seal([]byte("x"), nil), nil)
	return a.HashSecret("s") == b.HashSecret("s") && a.DeriveSecret("p", "x") == b.DeriveSecret("p", "x") && err == nil
}

func stored(t *testing.T, d *db.DB, k keystore.MasterKeys) []keystore.StoredKey {
	t.Helper()
	rows, err := keystore.Inspect(context.Background(), d, k)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return rows
}

// wrappedUnder reports whether every stored row is under master key id, with origin.
func wrappedUnder(rows []keystore.StoredKey, id, origin string) bool {
	purposes := map[string]bool{}
	for _, r := range rows {
		if r.MasterKeyID != id || (r.Purpose != keystore.PurposeCheck && r.Origin != origin) {
			return false
		}
		purposes[r.Purpose] = true
	}
	return len(rows) == 4 && purposes[keystore.PurposeCheck] && purposes[keystore.PurposeSecretHash] &&
		purposes[keystore.PurposeDerivedSecrets] && purposes[keystore.PurposeSigningKeySeal]
}

func TestANewDatabaseGetsRandomDataKeysAndACheckValueAtFirstOpen(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		d := open(t, testenv.DatabaseURL(t, b))
		a := master(t, 1)
		if rows := stored(t, d, keys(a)); len(rows) != 0 {
			t.Fatalf("an empty database stores %v", rows)
		}
		first := mustOpen(t, d, keys(a))
		if rows := stored(t, d, keys(a)); !wrappedUnder(rows, a.ID(), keystore.OriginRandom) {
			t.Fatalf("stored after the first open: %+v; want the check value and three random data keys under %s", rows, a.ID())
		}
		if sameKeys(first, a.DerivedKeyring()) {
			t.Fatal("a new database's data keys are the ones derived from its master key")
		}
		if again := mustOpen(t, d, keys(a)); !sameKeys(first, again) {
			t.Fatal("opening again gives other data keys")
		}
	})
}

func TestAMasterKeyThatOpensNothingStoredIsRefused(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		d := open(t, testenv.DatabaseURL(t, b))
		a, bk, c := master(t, 1), master(t, 2), master(t, 3)
		mustOpen(t, d, keys(a))
		cases := []struct {
			name string
			keys keystore.MasterKeys
			want string
		}{
			{"another key alone", keys(bk), "AUTHPLANE_MASTER_KEY does not open the keys stored in " + d.Name() +
				": it is not the key this database was set up with (they are wrapped under master key " + a.ID() +
				"; AUTHPLANE_MASTER_KEY is " + bk.ID() + "). Start with the right key, or with the new key in " +
				"AUTHPLANE_MASTER_KEY and the old one in AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate"},
			{"another key with another previous one", keys(bk, c), "neither AUTHPLANE_MASTER_KEY nor AUTHPLANE_PREVIOUS_MASTER_KEYS " +
				"opens the keys stored in " + d.Name() + ": none is the key this database was set up with (they are wrapped under " +
				"master key " + a.ID() + "; AUTHPLANE_MASTER_KEY is " + bk.ID() + ", AUTHPLANE_PREVIOUS_MASTER_KEYS are " + c.ID() +
				"). Start with the right key, or with the new key in AUTHPLANE_MASTER_KEY and the old one in " +
				"AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				for what, call := range map[string]func() error{
					"Open":    func() error { _, err := keystore.Open(context.Background(), d, tc.keys, nil); return err },
					"Inspect": func() error { _, err := keystore.Inspect(context.Background(), d, tc.keys); return err },
					"Rotate":  func() error { _, err := keystore.Rotate(context.Background(), d, tc.keys, nil); return err },
				} {
					err := call()
					if !keystore.IsWrongKey(err) || err.Error() != tc.want {
						t.Errorf("%s: %v\nwant %s", what, err, tc.want)
					}
				}
				if rows := stored(t, d, keys(a)); !wrappedUnder(rows, a.ID(), keystore.OriginRandom) {
					t.Fatalf("a refused key changed what is stored: %+v", rows)
				}
			})
		}
	})
}

// TestRotationRewrapsUnderTheNewKeyAndKeepsTheDataKeys follows an operator: start with the new key and the
// previous one, rotate, then run with the new key alone.
func TestRotationRewrapsUnderTheNewKeyAndKeepsTheDataKeys(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		d := open(t, testenv.DatabaseURL(t, b))
		a, bk := master(t, 1), master(t, 2)
		original := mustOpen(t, d, keys(a))

		if k := mustOpen(t, d, keys(bk, a)); !sameKeys(k, original) {
			t.Fatal("the previous key opens other data keys")
		}
		if k := mustOpen(t, d, keys(a, bk)); !sameKeys(k, original) {
			t.Fatal("the right key with a not yet used one among the previous keys opens other data keys")
		}
		r, err := keystore.Rotate(ctx, d, keys(bk, a), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Created) != 0 || len(r.Rewrapped) != 4 {
			t.Fatalf("rotation: %+v; want the four rows re-wrapped, none created", r)
		}
		for _, rw := range r.Rewrapped {
			if rw.MasterKeyID != a.ID() {
				t.Errorf("re-wrapped %s from %s, want from %s", rw.Purpose, rw.MasterKeyID, a.ID())
			}
		}
		if rows := stored(t, d, keys(bk)); !wrappedUnder(rows, bk.ID(), keystore.OriginRandom) {
			t.Fatalf("after the rotation: %+v", rows)
		}
		if k := mustOpen(t, d, keys(bk)); !sameKeys(k, original) {
			t.Fatal("after the rotation the new key opens other data keys")
		}
		if _, err := keystore.Open(ctx, d, keys(a), nil); !keystore.IsWrongKey(err) {
			t.Fatalf("after the rotation the old key alone: %v, want refused", err)
		}
		again, err := keystore.Rotate(ctx, d, keys(bk, a), nil)
		if err != nil || len(again.Rewrapped) != 0 || len(again.Created) != 0 {
			t.Fatalf("a second rotation: %+v, %v; want nothing done", again, err)
		}
	})
}

func TestStartsAtOnceOnANewDatabaseShareOneSetOfKeys(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		url := testenv.DatabaseURL(t, b)
		a := master(t, 1)
		const starters = 4
		got := make([]*secrets.Keyring, starters)
		errs := make([]error, starters)
		var wg sync.WaitGroup
		for i := range starters {
			d := open(t, url) // a pool of its own, as a process has
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = keystore.Open(context.Background(), d, keys(a), nil)
			}()
		}
		wg.Wait()
		for i := range starters {
			if errs[i] != nil {
				t.Fatalf("starter %d: %v", i, errs[i])
			}
			if !sameKeys(got[i], got[0]) {
				t.Fatalf("starter %d holds other data keys than starter 0", i)
			}
		}
		if rows := stored(t, open(t, url), keys(a)); !wrappedUnder(rows, a.ID(), keystore.OriginRandom) {
			t.Fatalf("stored: %+v", rows)
		}
	})
}

// legacyDatabase is a database some component migrated before the keystore existed.
func legacyDatabase(t *testing.T, b testenv.Backend) *db.DB {
	t.Helper()
	d := open(t, testenv.DatabaseURL(t, b))
	if err := d.Migrate(context.Background(), "legacy", []db.Migration{{Version: 1, Name: "t", SQL: "CREATE TABLE legacy_t (x INTEGER)"}}); err != nil {
		t.Fatal(err)
	}
	return d
}

// opensFor is a legacy check under which only the keys derived from made open the stored data.
func opensFor(made *secrets.MasterKey) keystore.LegacyCheck {
	return func(_ context.Context, _ *db.DB, k *secrets.Keyring) (bool, bool, error) {
		return true, sameKeys(k, made.DerivedKeyring()), nil
	}
}

func nothingToCheck(context.Context, *db.DB, *secrets.Keyring) (bool, bool, error) {
	return false, false, nil
}

func TestADatabaseMadeBeforeTheKeystoreKeepsTheKeysDerivedFromItsMasterKey(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		a, bk, c := master(t, 1), master(t, 2), master(t, 3)
		cases := []struct {
			name   string
			keys   keystore.MasterKeys
			check  keystore.LegacyCheck
			wantOf *secrets.MasterKey // whose derived keys are adopted; nil: refused
			want   string             // the refusal, with %s for the database
		}{
			{"its key, checked", keys(a), opensFor(a), a, ""},
			{"its key, nothing to check", keys(a), nothingToCheck, a, ""},
			{"its key, no check given", keys(a), nil, a, ""},
			{"a new key with its key among the previous ones", keys(bk, c, a), opensFor(a), a, ""},
			{"another key", keys(bk), opensFor(a), nil, "AUTHPLANE_MASTER_KEY does not open the signing keys stored in %s, " +
				"which was set up before master keys were checked at start: it is not the key this database was set up with " +
				"(AUTHPLANE_MASTER_KEY is " + bk.ID() + "). Start with the key this database was set up with, or with the new " +
				"key in AUTHPLANE_MASTER_KEY and the old one in AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate"},
			{"other keys", keys(bk, c), opensFor(a), nil, "neither AUTHPLANE_MASTER_KEY nor AUTHPLANE_PREVIOUS_MASTER_KEYS opens " +
				"the signing keys stored in %s, which was set up before master keys were checked at start: none is the key this " +
				"database was set up with (AUTHPLANE_MASTER_KEY is " + bk.ID() + ", AUTHPLANE_PREVIOUS_MASTER_KEYS are " + c.ID() +
				"). Start with the key this database was set up with, or with the new key in AUTHPLANE_MASTER_KEY and the old " +
				"one in AUTHPLANE_PREVIOUS_MASTER_KEYS to rotate"},
			{"previous keys and nothing to tell which", keys(bk, a), nothingToCheck, nil, "%s was set up before master keys " +
				"were checked at start and holds no signing key that tells which of AUTHPLANE_MASTER_KEY and " +
				"AUTHPLANE_PREVIOUS_MASTER_KEYS it was set up with. Start once with that key alone in AUTHPLANE_MASTER_KEY, then rotate"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				d := legacyDatabase(t, b)
				k, err := keystore.Open(ctx, d, tc.keys, tc.check)
				if tc.wantOf == nil {
					if want := strings.ReplaceAll(tc.want, "%s", d.Name()); !keystore.IsWrongKey(err) || err.Error() != want {
						t.Fatalf("Open: %v\nwant %s", err, want)
					}
					if rows := stored(t, d, tc.keys); len(rows) != 0 {
						t.Fatalf("a refused start stored %+v", rows)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !sameKeys(k, tc.wantOf.DerivedKeyring()) {
					t.Fatal("the data keys are not those derived from the key the database was made with")
				}
				if rows := stored(t, d, keys(tc.keys.Current)); !wrappedUnder(rows, tc.keys.Current.ID(), keystore.OriginDerived) {
					t.Fatalf("stored: %+v; want the derived keys under AUTHPLANE_MASTER_KEY", rows)
				}
				if again := mustOpen(t, d, keys(tc.keys.Current)); !sameKeys(again, k) {
					t.Fatal("opening again gives other data keys")
				}
			})
		}
	})
}

func TestDamagedKeysAreReportedAsSuch(t *testing.T) {
	testenv.ForEachBackend(t, func(t *testing.T, b testenv.Backend) {
		a := master(t, 1)
		cases := []struct {
			name, sql, want string
		}{
			{"no check value", "DELETE FROM authplane_keys WHERE purpose = 'check'", "(no check value)"},
			{"a data key missing", "DELETE FROM authplane_keys WHERE purpose = 'signing-key-seal'", "(no signing-key-seal key)"},
			{"rows swapped", "UPDATE authplane_keys SET wrapped = (SELECT wrapped FROM authplane_keys WHERE purpose = 'check') WHERE purpose = 'derived-secrets'",
				"(derived-secrets v1 does not open under the master key it names)"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				d := open(t, testenv.DatabaseURL(t, b))
				mustOpen(t, d, keys(a))
				if err := d.Exec(tc.sql).Error; err != nil {
					t.Fatal(err)
				}
				_, err := keystore.Open(context.Background(), d, keys(a), nil)
				want := "the keys stored in " + d.Name() + " are damaged " + tc.want + ": restore the table authplane_keys from a backup"
				if err == nil || err.Error() != want || keystore.IsWrongKey(err) {
					t.Fatalf("Open: %v\nwant %s", err, want)
				}
			})
		}
	})
}
