package password

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Hashes exported by other systems (bcrypt and argon2id as in the acceptance script; PBKDF2 made with Python's
// hashlib, the first in passlib's own documented form).
const (
	bcryptImport  = "$2b$10$oWhqpdSTJnfVPwmoTYiYCOwGKIFbovVceke2eC5XO7HRK5itMxoiO" // import-me-please
	argonImport   = "$argon2id$v=19$m=65536,t=3,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI"
	passlibSHA256 = "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M"        // password
	phcSHA256     = "$pbkdf2-sha256$i=1000,l=32$c2FsdHlzYWx0eXNhbHQhIQ$aGWa31/7C/cvYLrwTi4StwxI7YGsRlqFayRjebsjYx4" // pässword
	passlibSHA512 = "$pbkdf2-sha512$2000$c2FsdHlzYWx0eXNhbHQhIQ$Bg885GjMVBX/AJK6CsBPuLm.6axqlDd7iWAhYry6WHQRaQv0Pqx.qzC3a1oB0YbQ4kP5bpHnb1Xv4hVjThcJGw"
)

func TestImportedHashesVerifyTheirPassword(t *testing.T) {
	tests := []struct {
		name, encoded, method, password string
	}{
		{"bcrypt $2b$", bcryptImport, Bcrypt, "import-me-please"},
		{"bcrypt $2a$", "$2a$" + bcryptImport[4:], Bcrypt, "import-me-please"},
		{"bcrypt $2y$", "$2y$" + bcryptImport[4:], Bcrypt, "import-me-please"},
		{"argon2id PHC", argonImport, Argon2id, "argon-import-pass"},
		{"pbkdf2-sha256 passlib", passlibSHA256, PBKDF2SHA256, "password"},
		{"pbkdf2-sha256 PHC with non-ASCII password", phcSHA256, PBKDF2SHA256, "pässword"},
		{"pbkdf2-sha512 passlib", passlibSHA512, PBKDF2SHA512, "hunter2"},
	}
	hasher := NewHasher(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Parse(tt.encoded)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if h.Method != tt.method {
				t.Fatalf("method = %q, want %q", h.Method, tt.method)
			}
			if err := h.CheckLimits(hasher.Limits()); err != nil {
				t.Fatalf("CheckLimits: %v", err)
			}
			for _, c := range []struct {
				password string
				want     bool
			}{{tt.password, true}, {tt.password + "x", false}, {"", false}, {strings.ToUpper(tt.password), false}} {
				got, err := hasher.Verify(context.Background(), c.password, h)
				if err != nil || got != c.want {
					t.Errorf("Verify(%q) = %v, %v; want %v", c.password, got, err, c.want)
				}
			}
		})
	}
}

func TestParseRefusesWhatItCannotRead(t *testing.T) {
	tests := []struct {
		name, encoded string
		want          error
	}{
		{"empty", "", ErrUnknownFormat},
		{"plain text", "hunter2", ErrUnknownFormat},
		{"unknown scheme", "$9$not-a-real-hash", ErrUnknownFormat},
		{"md5 crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", ErrUnknownFormat},
		{"scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E", ErrUnknownFormat},
		{"argon2d", "$argon2d$v=19$m=65536,t=3,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", ErrUnknownFormat},
		{"bcrypt too short", "$2b$10$oWhqpdSTJnfVPwmoTYiYCO", ErrMalformed},
		{"bcrypt bad cost", "$2b$xx$oWhqpdSTJnfVPwmoTYiYCOwGKIFbovVceke2eC5XO7HRK5itMxoiO", ErrMalformed},
		{"bcrypt bad alphabet", "$2b$10$oWhqpdSTJnfVPwmoTYiYCOwGKIFbovVceke2eC5XO7HRK5itMxoi!", ErrMalformed},
		{"argon2 old version", "$argon2id$v=16$m=65536,t=3,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", ErrMalformed},
		{"argon2 missing t", "$argon2id$v=19$m=65536,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", ErrMalformed},
		{"argon2 unknown param", "$argon2id$v=19$m=65536,t=3,p=2,x=1$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", ErrMalformed},
		{"argon2 zero iterations", "$argon2id$v=19$m=65536,t=0,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", ErrMalformed},
		{"argon2 bad salt", "$argon2id$v=19$m=65536,t=3,p=2$!!$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", ErrMalformed},
		{"argon2 short key", "$argon2id$v=19$m=65536,t=3,p=2$VgeUZOZYD7TJ0Xap/6lKHg$WTp5", ErrMalformed},
		{"argon2 too few parts", "$argon2id$m=65536,t=3,p=2$VgeUZOZYD7TJ0Xap/6lKHg", ErrMalformed},
		{"pbkdf2 rounds not a number", "$pbkdf2-sha256$many$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M", ErrMalformed},
		{"pbkdf2 zero rounds", "$pbkdf2-sha256$0$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M", ErrMalformed},
		{"pbkdf2 length mismatch", "$pbkdf2-sha256$i=1000,l=64$c2FsdHlzYWx0eXNhbHQhIQ$aGWa31/7C/cvYLrwTi4StwxI7YGsRlqFayRjebsjYx4", ErrMalformed},
		{"pbkdf2 missing hash", "$pbkdf2-sha256$6400$0ZrzXitFSGltTQnBWOsdAw", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.encoded); !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.encoded, err, tt.want)
			}
		})
	}
}

func TestCostLimitsRefuseExpensiveImports(t *testing.T) {
	l := DefaultLimits()
	l.MaxMemoryKiB = 32 * 1024
	tests := []struct {
		name, encoded string
		ok            bool
	}{
		{"argon2 within budget", "$argon2id$v=19$m=19456,t=2,p=1$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", true},
		{"argon2 memory over budget", argonImport, false},
		{"argon2 too many iterations", "$argon2id$v=19$m=8192,t=100,p=1$VgeUZOZYD7TJ0Xap/6lKHg$WTp5sAASdLtQ/LPrhNKgdynMm0puY62ccDSGCuZTdzI", false},
		{"bcrypt cost 10", bcryptImport, true},
		{"bcrypt cost 31", "$2b$31$oWhqpdSTJnfVPwmoTYiYCOwGKIFbovVceke2eC5XO7HRK5itMxoiO", false},
		{"pbkdf2 reasonable", passlibSHA256, true},
		{"pbkdf2 ten million rounds", "$pbkdf2-sha256$10000000$0ZrzXitFSGltTQnBWOsdAw$Y11AchqV4b0sUisdZd0Xr97KWoymNE0LNNrnEgY4H9M", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Parse(tt.encoded)
			if err != nil {
				t.Fatal(err)
			}
			err = h.CheckLimits(l)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrCost)) {
				t.Fatalf("CheckLimits = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestNewHashesRoundTripAndMatchTheirParams(t *testing.T) {
	fast := []Params{
		{Method: Argon2id, MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1},
		{Method: Bcrypt, BcryptCost: 10},
		{Method: PBKDF2SHA256, PBKDF2Iterations: 100_000},
	}
	hasher := NewHasher(Config{})
	ctx := context.Background()
	for _, p := range fast {
		t.Run(p.Method, func(t *testing.T) {
			if err := CheckParams(p, hasher.Limits()); err != nil {
				t.Fatalf("CheckParams: %v", err)
			}
			enc, err := hasher.Hash(ctx, "correct horse", p)
			if err != nil {
				t.Fatal(err)
			}
			h, err := Parse(enc)
			if err != nil {
				t.Fatalf("Parse(%q): %v", enc, err)
			}
			if !h.Matches(p) {
				t.Errorf("%q does not match the params it was made with", enc)
			}
			other := p
			other.MemoryKiB, other.BcryptCost, other.PBKDF2Iterations = p.MemoryKiB*2, p.BcryptCost+1, p.PBKDF2Iterations*2
			if h.Matches(other) {
				t.Errorf("%q matches params of another cost", enc)
			}
			if ok, _ := hasher.Verify(ctx, "correct horse", h); !ok {
				t.Error("the password does not verify against its own hash")
			}
			if ok, _ := hasher.Verify(ctx, "correct horsE", h); ok {
				t.Error("another password verifies")
			}
			again, _ := hasher.Hash(ctx, "correct horse", p)
			if again == enc {
				t.Error("two hashes of one password are equal: the salt is not random")
			}
		})
	}
}

func TestDefaultParamsAreArgon2idPHC(t *testing.T) {
	enc, err := NewHasher(Config{}).Hash(context.Background(), "pw", DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("default hash = %q", enc)
	}
}

func TestImportedHashOfAnotherMethodNeedsUpgrade(t *testing.T) {
	for _, enc := range []string{bcryptImport, argonImport, passlibSHA256, phcSHA256, passlibSHA512} {
		h, err := Parse(enc)
		if err != nil {
			t.Fatal(err)
		}
		if h.Matches(DefaultParams()) {
			t.Errorf("%q matches the default params", enc)
		}
	}
}

func TestCheckParamsRefusesUnusableSettings(t *testing.T) {
	l := DefaultLimits()
	tests := []struct {
		name string
		p    Params
	}{
		{"unknown method", Params{Method: "md5"}},
		{"argon2 memory too small", Params{Method: Argon2id, MemoryKiB: 1024, Iterations: 1, Parallelism: 1}},
		{"argon2 memory too large", Params{Method: Argon2id, MemoryKiB: 1<<20 + 1, Iterations: 1, Parallelism: 1}},
		{"argon2 no iterations", Params{Method: Argon2id, MemoryKiB: 19456, Parallelism: 1}},
		{"argon2 no parallelism", Params{Method: Argon2id, MemoryKiB: 19456, Iterations: 1}},
		{"bcrypt too cheap", Params{Method: Bcrypt, BcryptCost: 4}},
		{"bcrypt too dear", Params{Method: Bcrypt, BcryptCost: 15}},
		{"pbkdf2 too few rounds", Params{Method: PBKDF2SHA256, PBKDF2Iterations: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckParams(tt.p, l); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := CheckParams(DefaultParams(), l); err != nil {
		t.Fatalf("default params refused: %v", err)
	}
}
