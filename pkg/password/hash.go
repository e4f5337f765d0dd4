// Package password hashes and verifies user passwords. New hashes are argon2id PHC strings by default; stored
// hashes may also be bcrypt or PBKDF2 (imported from other systems) and are told apart by their prefix. Every
// hash computation runs in a bounded pool (see Hasher) so that a flood of logins cannot exhaust memory.
package password

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hashing methods.
const (
	Argon2id     = "argon2id"
	Argon2i      = "argon2i" // verified only (imports)
	Bcrypt       = "bcrypt"
	PBKDF2SHA256 = "pbkdf2-sha256"
	PBKDF2SHA512 = "pbkdf2-sha512" // verified only (imports)
)

// Methods a pool may choose for new hashes.
var Methods = []string{Argon2id, Bcrypt, PBKDF2SHA256}

// Errors of Parse. ErrUnknownFormat means the string is not a hash this package knows; ErrMalformed that it has
// a known prefix but cannot be read; ErrCost that its cost is outside what this server agrees to compute.
var (
	ErrUnknownFormat = errors.New("unknown password hash format")
	ErrMalformed     = errors.New("malformed password hash")
	ErrCost          = errors.New("password hash cost out of range")
)

// Params are the settings of new hashes.
type Params struct {
	Method string
	// Argon2id.
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	// Bcrypt.
	BcryptCost int
	// PBKDF2-HMAC-SHA256.
	PBKDF2Iterations int
}

// Defaults: OWASP's argon2id recommendation (19 MiB, t=2, p=1); bcrypt cost 12; PBKDF2-SHA256 600,000 rounds.
const (
	DefaultMemoryKiB        = 19456
	DefaultIterations       = 2
	DefaultParallelism      = 1
	DefaultBcryptCost       = 12
	DefaultPBKDF2Iterations = 600_000

	saltLen = 16
	keyLen  = 32
)

// DefaultParams are argon2id with the default cost.
func DefaultParams() Params {
	return Params{Method: Argon2id, MemoryKiB: DefaultMemoryKiB, Iterations: DefaultIterations,
		Parallelism: DefaultParallelism, BcryptCost: DefaultBcryptCost, PBKDF2Iterations: DefaultPBKDF2Iterations}
}

// Limits bound the cost of hashes this server computes, stored or imported: a hash beyond them would let one
// request hold a CPU or much memory for seconds.
type Limits struct {
	MaxMemoryKiB        uint32
	MaxIterations       uint32 // argon2
	MaxParallelism      uint8
	MinBcryptCost       int
	MaxBcryptCost       int
	MaxPBKDF2Iterations int
}

// DefaultLimits allow up to 1 GiB argon2 memory (further bounded by the hashing budget), bcrypt 4–15 and
// 2,000,000 PBKDF2 rounds (about a second).
func DefaultLimits() Limits {
	return Limits{MaxMemoryKiB: 1 << 20, MaxIterations: 16, MaxParallelism: 16, MinBcryptCost: bcrypt.MinCost,
		MaxBcryptCost: 15, MaxPBKDF2Iterations: 2_000_000}
}

// Hash is a parsed stored hash.
type Hash struct {
	Method string
	// Argon2: memory in KiB, iterations, parallelism.
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	// Bcrypt cost.
	Cost int
	// PBKDF2 rounds.
	Rounds int
	Salt   []byte
	Key    []byte

	encoded string
}

// String is the encoded hash.
func (h *Hash) String() string { return h.encoded }

// MemoryBytes is roughly what computing the hash allocates.
func (h *Hash) MemoryBytes() int64 {
	if h.Method == Argon2id || h.Method == Argon2i {
		return int64(h.MemoryKiB) * 1024
	}
	return 4096
}

// Parse reads an encoded hash: `$argon2id$` / `$argon2i$` PHC strings, bcrypt (`$2a$`, `$2b$`, `$2y$`), and
// `$pbkdf2-sha256$` / `$pbkdf2-sha512$` in passlib form (`$pbkdf2-sha256$29000$salt$key`, adapted base64) or
// PHC form (`$pbkdf2-sha256$i=29000,l=32$salt$key`).
func Parse(encoded string) (*Hash, error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"), strings.HasPrefix(encoded, "$argon2i$"):
		return parseArgon2(encoded)
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		return parseBcrypt(encoded)
	case strings.HasPrefix(encoded, "$pbkdf2-sha256$"), strings.HasPrefix(encoded, "$pbkdf2-sha512$"):
		return parsePBKDF2(encoded)
	}
	return nil, ErrUnknownFormat
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func parseArgon2(encoded string) (*Hash, error) {
	parts := strings.Split(encoded, "$")
	// "", method, [v=19], params, salt, key
	if len(parts) == 5 {
		parts = append(parts[:2], append([]string{"v=19"}, parts[2:]...)...)
	}
	if len(parts) != 6 {
		return nil, malformed("argon2 hashes have the form $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[2] != "v=19" {
		return nil, malformed("only argon2 version 19 is supported")
	}
	h := &Hash{Method: parts[1], encoded: encoded}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, malformed("argon2 parameters must be m=…,t=…,p=…")
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, malformed("argon2 parameter %s is not a number", k)
		}
		switch k {
		case "m":
			h.MemoryKiB = uint32(n)
		case "t":
			h.Iterations = uint32(n)
		case "p":
			if n > 255 {
				return nil, malformed("argon2 parallelism must be at most 255")
			}
			h.Parallelism = uint8(n)
		default:
			return nil, malformed("unknown argon2 parameter %q", k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return nil, malformed("argon2 parameters must be m=…,t=…,p=…")
	}
	if h.Iterations < 1 || h.Parallelism < 1 || h.MemoryKiB < 8*uint32(h.Parallelism) {
		return nil, malformed("argon2 needs t ≥ 1, p ≥ 1 and m ≥ 8·p")
	}
	var err error
	if h.Salt, err = decodeB64(parts[4]); err != nil || len(h.Salt) < 8 {
		return nil, malformed("argon2 salt must be base64 of at least 8 bytes")
	}
	if h.Key, err = decodeB64(parts[5]); err != nil || len(h.Key) < 16 || len(h.Key) > 128 {
		return nil, malformed("argon2 hash must be base64 of 16 to 128 bytes")
	}
	return h, nil
}

func parseBcrypt(encoded string) (*Hash, error) {
	// $2b$NN$ + 22 characters of salt + 31 of hash.
	if len(encoded) != 60 || encoded[3] != '$' || encoded[6] != '$' {
		return nil, malformed("bcrypt hashes have the form $2b$NN$ followed by 53 characters")
	}
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		return nil, malformed("bcrypt: %v", err)
	}
	for _, c := range encoded[7:] {
		if !strings.ContainsRune(bcryptAlphabet, c) {
			return nil, malformed("bcrypt hash holds a character outside its alphabet")
		}
	}
	return &Hash{Method: Bcrypt, Cost: cost, encoded: encoded}, nil
}

const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parsePBKDF2(encoded string) (*Hash, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 5 {
		return nil, malformed("pbkdf2 hashes have the form $pbkdf2-sha256$rounds$salt$hash")
	}
	h := &Hash{Method: parts[1], encoded: encoded}
	params := parts[2]
	wantLen := 0
	if strings.HasPrefix(params, "i=") {
		for _, kv := range strings.Split(params, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, malformed("pbkdf2 parameter %s is not a number", k)
			}
			switch k {
			case "i":
				h.Rounds = n
			case "l":
				wantLen = n
			default:
				return nil, malformed("unknown pbkdf2 parameter %q", k)
			}
		}
	} else {
		n, err := strconv.Atoi(params)
		if err != nil {
			return nil, malformed("pbkdf2 rounds must be a number")
		}
		h.Rounds = n
	}
	if h.Rounds < 1 {
		return nil, malformed("pbkdf2 needs at least one round")
	}
	var err error
	if h.Salt, err = decodeB64(parts[3]); err != nil || len(h.Salt) < 1 || len(h.Salt) > 1024 {
		return nil, malformed("pbkdf2 salt must be base64 of 1 to 1024 bytes")
	}
	if h.Key, err = decodeB64(parts[4]); err != nil || len(h.Key) < 16 || len(h.Key) > 128 {
		return nil, malformed("pbkdf2 hash must be base64 of 16 to 128 bytes")
	}
	if wantLen != 0 && wantLen != len(h.Key) {
		return nil, malformed("pbkdf2 hash length does not match l=%d", wantLen)
	}
	return h, nil
}

// decodeB64 reads the base64 flavours found in PHC and modular-crypt strings: standard or URL alphabet, with or
// without padding, and passlib's adapted alphabet ('.' for '+').
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, errors.New("empty")
	}
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(strings.ReplaceAll(s, ".", "+"))
}

// CheckLimits reports a hash whose cost exceeds l (or, for argon2, maxMemoryKiB when that is lower).
func (h *Hash) CheckLimits(l Limits) error {
	switch h.Method {
	case Argon2id, Argon2i:
		if h.MemoryKiB > l.MaxMemoryKiB || h.Iterations > l.MaxIterations || h.Parallelism > l.MaxParallelism {
			return fmt.Errorf("%w: argon2 allows at most m=%d, t=%d, p=%d", ErrCost, l.MaxMemoryKiB, l.MaxIterations, l.MaxParallelism)
		}
	case Bcrypt:
		if h.Cost < l.MinBcryptCost || h.Cost > l.MaxBcryptCost {
			return fmt.Errorf("%w: bcrypt cost must be %d to %d", ErrCost, l.MinBcryptCost, l.MaxBcryptCost)
		}
	case PBKDF2SHA256, PBKDF2SHA512:
		if h.Rounds > l.MaxPBKDF2Iterations {
			return fmt.Errorf("%w: pbkdf2 allows at most %d rounds", ErrCost, l.MaxPBKDF2Iterations)
		}
	}
	return nil
}

// Matches reports whether the hash was made with p's method and cost, so it needs no upgrade.
func (h *Hash) Matches(p Params) bool {
	switch h.Method {
	case Argon2id:
		return p.Method == Argon2id && h.MemoryKiB == p.MemoryKiB && h.Iterations == p.Iterations &&
			h.Parallelism == p.Parallelism && len(h.Key) >= keyLen && len(h.Salt) >= saltLen
	case Bcrypt:
		return p.Method == Bcrypt && h.Cost == p.BcryptCost
	case PBKDF2SHA256:
		return p.Method == PBKDF2SHA256 && h.Rounds == p.PBKDF2Iterations && len(h.Key) >= keyLen && len(h.Salt) >= saltLen
	}
	return false
}

// verify computes the hash of password and compares it in constant time. It does the expensive work directly:
// callers go through Hasher, which bounds how many run at once.
func (h *Hash) verify(password string) bool {
	var got []byte
	switch h.Method {
	case Argon2id:
		got = argon2.IDKey([]byte(password), h.Salt, h.Iterations, h.MemoryKiB, h.Parallelism, uint32(len(h.Key)))
	case Argon2i:
		got = argon2.Key([]byte(password), h.Salt, h.Iterations, h.MemoryKiB, h.Parallelism, uint32(len(h.Key)))
	case Bcrypt:
		// bcrypt compares in constant time itself.
		return bcrypt.CompareHashAndPassword([]byte(h.encoded), []byte(password)) == nil
	case PBKDF2SHA256, PBKDF2SHA512:
		prf := func() hash.Hash { return sha256.New() }
		if h.Method == PBKDF2SHA512 {
			prf = sha512.New
		}
		var err error
		if got, err = pbkdf2.Key(prf, password, h.Salt, h.Rounds, len(h.Key)); err != nil {
			return false
		}
	default:
		return false
	}
	return subtle.ConstantTimeCompare(got, h.Key) == 1
}

// CheckParams reports settings a pool may not use: an unknown method, or a cost outside l.
func CheckParams(p Params, l Limits) error {
	switch p.Method {
	case Argon2id:
		if p.MemoryKiB < 8*1024 || p.MemoryKiB > l.MaxMemoryKiB {
			return fmt.Errorf("%w: argon2 memory must be %d to %d KiB", ErrCost, 8*1024, l.MaxMemoryKiB)
		}
		if p.Iterations < 1 || p.Iterations > l.MaxIterations {
			return fmt.Errorf("%w: argon2 iterations must be 1 to %d", ErrCost, l.MaxIterations)
		}
		if p.Parallelism < 1 || p.Parallelism > l.MaxParallelism {
			return fmt.Errorf("%w: argon2 parallelism must be 1 to %d", ErrCost, l.MaxParallelism)
		}
	case Bcrypt:
		if p.BcryptCost < 10 || p.BcryptCost > min(14, l.MaxBcryptCost) {
			return fmt.Errorf("%w: bcrypt cost must be 10 to %d", ErrCost, min(14, l.MaxBcryptCost))
		}
	case PBKDF2SHA256:
		if p.PBKDF2Iterations < 100_000 || p.PBKDF2Iterations > l.MaxPBKDF2Iterations {
			return fmt.Errorf("%w: pbkdf2 iterations must be 100000 to %d", ErrCost, l.MaxPBKDF2Iterations)
		}
	default:
		return fmt.Errorf("unknown hashing method %q (supported: %s)", p.Method, strings.Join(Methods, ", "))
	}
	return nil
}

// memoryBytes is what a new hash with p allocates.
func (p Params) memoryBytes() int64 {
	if p.Method == Argon2id {
		return int64(p.MemoryKiB) * 1024
	}
	return 4096
}

// compute makes a new encoded hash of password. Like verify, it runs unbounded; Hasher.Hash bounds it.
func compute(password string, p Params) (string, error) {
	switch p.Method {
	case Argon2id:
		salt := randomBytes(saltLen)
		key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
		return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.MemoryKiB, p.Iterations, p.Parallelism,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
	case Bcrypt:
		out, err := bcrypt.GenerateFromPassword([]byte(password), p.BcryptCost)
		return string(out), err
	case PBKDF2SHA256:
		salt := randomBytes(saltLen)
		key, err := pbkdf2.Key(sha256.New, password, salt, p.PBKDF2Iterations, keyLen)
		if err != nil {
			return "", err
		}
		ab64 := func(b []byte) string { return strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(b), "+", ".") }
		return fmt.Sprintf("$pbkdf2-sha256$%d$%s$%s", p.PBKDF2Iterations, ab64(salt), ab64(key)), nil
	}
	return "", fmt.Errorf("unknown hashing method %q", p.Method)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}
