package pool

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/password"
)

// Defaults and bounds of a pool's settings.
const (
	defaultMinLength    = 8
	defaultMaxLength    = 128
	maxMaxLength        = 1024
	bcryptMaxBytes      = 72
	defaultMaxAttempts  = 10
	maxMaxAttempts      = 1000
	defaultBlock        = 15 * time.Minute
	minBlock            = time.Second
	maxBlock            = 30 * 24 * time.Hour
	mechanismPassword   = "password"
	maxIdentifiersCount = 50
)

var supportedMechanisms = []string{mechanismPassword}

// settings are a pool's rules, stored as JSON in pool_pools.settings.
type settings struct {
	Mechanisms []string       `json:"mechanisms"`
	Preferred  string         `json:"preferred"`
	Policy     policySettings `json:"password_policy"`
	Hashing    hashSettings   `json:"hashing"`
	Lockout    lockout        `json:"lockout"`
}

type policySettings struct {
	MinLength         int `json:"min_length"`
	MaxLength         int `json:"max_length"`
	CapitalLetters    int `json:"capital_letters"`
	LowercaseLetters  int `json:"lowercase_letters"`
	Digits            int `json:"digits"`
	SpecialCharacters int `json:"special_characters"`
}

type hashSettings struct {
	Method           string `json:"method"`
	MemoryKiB        uint32 `json:"memory_kib"`
	Iterations       uint32 `json:"iterations"`
	Parallelism      uint32 `json:"parallelism"`
	BcryptCost       int    `json:"bcrypt_cost"`
	PBKDF2Iterations int    `json:"pbkdf2_iterations"`
}

type lockout struct {
	MaxAttempts int   `json:"max_attempts"`
	BlockMs     int64 `json:"block_ms"`
}

func defaultSettings() settings {
	p := password.DefaultParams()
	return settings{
		Mechanisms: []string{mechanismPassword}, Preferred: mechanismPassword,
		Policy: policySettings{MinLength: defaultMinLength, MaxLength: defaultMaxLength},
		Hashing: hashSettings{Method: p.Method, MemoryKiB: p.MemoryKiB, Iterations: p.Iterations,
			Parallelism: uint32(p.Parallelism), BcryptCost: p.BcryptCost, PBKDF2Iterations: p.PBKDF2Iterations},
		Lockout: lockout{MaxAttempts: defaultMaxAttempts, BlockMs: defaultBlock.Milliseconds()},
	}
}

func decodeSettings(raw string) (settings, error) {
	s := defaultSettings()
	err := json.Unmarshal([]byte(raw), &s)
	return s, err
}

func (s *settings) encode() string {
	raw, _ := json.Marshal(s)
	return string(raw)
}

// params are the settings of new hashes.
func (s *settings) params() password.Params {
	h := s.Hashing
	return password.Params{Method: h.Method, MemoryKiB: h.MemoryKiB, Iterations: h.Iterations,
		Parallelism: uint8(min(h.Parallelism, 255)), BcryptCost: h.BcryptCost, PBKDF2Iterations: h.PBKDF2Iterations}
}

// policy is what new passwords must satisfy.
func (s *settings) policy() password.Policy {
	p := s.Policy
	pol := password.Policy{MinLength: p.MinLength, MaxLength: p.MaxLength, CapitalLetters: p.CapitalLetters,
		LowercaseLetters: p.LowercaseLetters, Digits: p.Digits, SpecialCharacters: p.SpecialCharacters}
	if s.Hashing.Method == password.Bcrypt {
		pol.MaxBytes = bcryptMaxBytes
	}
	return pol
}

func (s *settings) block() time.Duration { return time.Duration(s.Lockout.BlockMs) * time.Millisecond }

// mask reports which fields of a message an update touches. A nil mask touches every field.
type mask struct {
	all   bool
	paths []string
}

func newMask(m *fieldmaskpb.FieldMask) mask {
	if m == nil {
		return mask{all: true}
	}
	return mask{paths: m.Paths}
}

// has reports whether field, or anything inside it, is touched.
func (m mask) has(field string) bool {
	return m.all || slices.ContainsFunc(m.paths, func(p string) bool { return p == field || strings.HasPrefix(p, field+".") })
}

// sub is the mask inside a message field: all of it when the field itself is named.
func (m mask) sub(field string) mask {
	if m.all || slices.Contains(m.paths, field) {
		return mask{all: true}
	}
	var out mask
	for _, p := range m.paths {
		if rest, ok := strings.CutPrefix(p, field+"."); ok {
			out.paths = append(out.paths, rest)
		}
	}
	return out
}

// applySettings copies the settings an update touches (all of them on create) from in onto s, filling defaults
// for zero values, and checks the result.
func applySettings(s *settings, in *poolv1.Pool, m mask, limits password.Limits) error {
	if m.has("authentication_mechanisms") {
		s.Mechanisms = dedupe(in.AuthenticationMechanisms)
		if len(s.Mechanisms) == 0 {
			s.Mechanisms = []string{mechanismPassword}
		}
		for _, mech := range s.Mechanisms {
			if !slices.Contains(supportedMechanisms, mech) {
				return apierr.Field("authentication_mechanisms", "unsupported authentication mechanism %q (supported: %s)",
					mech, strings.Join(supportedMechanisms, ", "))
			}
		}
	}
	if m.has("preferred_authentication_mechanism") {
		s.Preferred = in.PreferredAuthenticationMechanism
	}
	if s.Preferred == "" || !slices.Contains(s.Mechanisms, s.Preferred) {
		if m.has("preferred_authentication_mechanism") && in.PreferredAuthenticationMechanism != "" {
			return apierr.Field("preferred_authentication_mechanism", "preferred_authentication_mechanism must be one of authentication_mechanisms")
		}
		s.Preferred = s.Mechanisms[0]
	}
	if err := applyPolicy(&s.Policy, in.PasswordPolicy, m.sub("password_policy")); err != nil {
		return err
	}
	if err := applyHashing(&s.Hashing, in.PasswordSettings, m.sub("password_settings"), limits); err != nil {
		return err
	}
	if s.Hashing.Method == password.Bcrypt && s.Policy.MinLength > bcryptMaxBytes {
		return apierr.Field("password_policy.min_length", "with bcrypt, min_length must be at most %d", bcryptMaxBytes)
	}
	return applyLockout(&s.Lockout, in.LockoutPolicy, m.sub("lockout_policy"))
}

func applyPolicy(p *policySettings, in *poolv1.PasswordPolicy, m mask) error {
	if in == nil {
		in = &poolv1.PasswordPolicy{}
	}
	ints := []struct {
		field string
		in    int32
		def   int
		out   *int
	}{
		{"min_length", in.MinLength, defaultMinLength, &p.MinLength},
		{"max_length", in.MaxLength, defaultMaxLength, &p.MaxLength},
		{"capital_letters", in.CapitalLetters, 0, &p.CapitalLetters},
		{"lowercase_letters", in.LowercaseLetters, 0, &p.LowercaseLetters},
		{"digits", in.Digits, 0, &p.Digits},
		{"special_characters", in.SpecialCharacters, 0, &p.SpecialCharacters},
	}
	for _, f := range ints {
		if !m.has(f.field) {
			continue
		}
		if f.in < 0 || f.in > maxMaxLength {
			return apierr.Field("password_policy."+f.field, "password_policy.%s must be between 0 and %d", f.field, maxMaxLength)
		}
		*f.out = int(f.in)
		if f.in == 0 {
			*f.out = f.def
		}
	}
	if p.MinLength > p.MaxLength {
		return apierr.Field("password_policy.min_length", "password_policy.min_length (%d) exceeds max_length (%d)", p.MinLength, p.MaxLength)
	}
	if sum := p.CapitalLetters + p.LowercaseLetters + p.Digits + p.SpecialCharacters; sum > p.MaxLength {
		return apierr.Field("password_policy", "password_policy requires %d characters of given classes, more than max_length (%d)", sum, p.MaxLength)
	}
	return nil
}

func applyHashing(h *hashSettings, in *poolv1.PasswordSettings, m mask, limits password.Limits) error {
	if in == nil {
		in = &poolv1.PasswordSettings{}
	}
	def := password.DefaultParams()
	if m.has("hashing_method") {
		h.Method = in.HashingMethod
		if h.Method == "" {
			h.Method = def.Method
		}
	}
	argon, am := in.GetArgon2(), m.sub("argon2")
	if am.has("memory_kib") {
		h.MemoryKiB = orDefault(argon.GetMemoryKib(), def.MemoryKiB)
	}
	if am.has("iterations") {
		h.Iterations = orDefault(argon.GetIterations(), def.Iterations)
	}
	if am.has("parallelism") {
		h.Parallelism = orDefault(argon.GetParallelism(), uint32(def.Parallelism))
	}
	if m.sub("bcrypt").has("cost") {
		h.BcryptCost = int(orDefault(in.GetBcrypt().GetCost(), int32(def.BcryptCost)))
	}
	if m.sub("pbkdf2").has("iterations") {
		h.PBKDF2Iterations = int(orDefault(in.GetPbkdf2().GetIterations(), int32(def.PBKDF2Iterations)))
	}
	if h.Parallelism > 255 {
		return apierr.Field("password_settings.argon2.parallelism", "password_settings.argon2.parallelism must be at most 255")
	}
	// Only the chosen method's cost matters; the others are kept for a later switch.
	s := settings{Hashing: *h}
	if err := password.CheckParams(s.params(), limits); err != nil {
		field := "password_settings"
		if errors.Is(err, password.ErrCost) {
			field += "." + map[string]string{password.Argon2id: "argon2", password.Bcrypt: "bcrypt", password.PBKDF2SHA256: "pbkdf2"}[h.Method]
		} else {
			field += ".hashing_method"
		}
		return apierr.Field(field, "%s: %v", field, err)
	}
	return nil
}

func applyLockout(l *lockout, in *poolv1.LockoutPolicy, m mask) error {
	if m.has("max_attempts") {
		n := in.GetMaxAttempts()
		if n < 0 || n > maxMaxAttempts {
			return apierr.Field("lockout_policy.max_attempts", "lockout_policy.max_attempts must be between 1 and %d", maxMaxAttempts)
		}
		l.MaxAttempts = int(orDefault(n, defaultMaxAttempts))
	}
	if m.has("block_duration") {
		d := defaultBlock
		if bd := in.GetBlockDuration(); bd != nil {
			if err := bd.CheckValid(); err != nil {
				return apierr.Field("lockout_policy.block_duration", "lockout_policy.block_duration is not a valid duration")
			}
			d = bd.AsDuration()
		}
		if d < minBlock || d > maxBlock {
			return apierr.Field("lockout_policy.block_duration", "lockout_policy.block_duration must be between %s and %s", minBlock, maxBlock)
		}
		l.BlockMs = d.Milliseconds()
	}
	return nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (s *settings) toProto(p *poolv1.Pool) {
	p.AuthenticationMechanisms = slices.Clone(s.Mechanisms)
	p.PreferredAuthenticationMechanism = s.Preferred
	p.PasswordPolicy = &poolv1.PasswordPolicy{
		MinLength: int32(s.Policy.MinLength), MaxLength: int32(s.Policy.MaxLength),
		CapitalLetters: int32(s.Policy.CapitalLetters), LowercaseLetters: int32(s.Policy.LowercaseLetters),
		Digits: int32(s.Policy.Digits), SpecialCharacters: int32(s.Policy.SpecialCharacters),
	}
	p.PasswordSettings = &poolv1.PasswordSettings{
		HashingMethod: s.Hashing.Method,
		Argon2: &poolv1.Argon2Settings{MemoryKib: s.Hashing.MemoryKiB, Iterations: s.Hashing.Iterations,
			Parallelism: s.Hashing.Parallelism},
		Bcrypt: &poolv1.BcryptSettings{Cost: int32(s.Hashing.BcryptCost)},
		Pbkdf2: &poolv1.Pbkdf2Settings{Iterations: int32(s.Hashing.PBKDF2Iterations)},
	}
	p.LockoutPolicy = &poolv1.LockoutPolicy{MaxAttempts: int32(s.Lockout.MaxAttempts), BlockDuration: durationpb.New(s.block())}
}
