package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"sync"
)

// clientKeys builds the client cache's keys: `tenant/client/server/` and a keyed hash of the presented secret
// (HMAC-SHA256 under a random key of this process, which is all a per-process cache needs). Hashers and buffers
// are pooled, so a warm token request spends one allocation on its key.
type clientKeys struct{ pool sync.Pool }

type clientKeyScratch struct {
	mac hash.Hash
	buf []byte
}

func newClientKeys() *clientKeys {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &clientKeys{pool: sync.Pool{New: func() any {
		return &clientKeyScratch{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 256)}
	}}}
}

func (k *clientKeys) key(tenantID, clientID, serverID, secret string) string {
	s := k.pool.Get().(*clientKeyScratch)
	s.buf = append(s.buf[:0], secret...)
	s.mac.Reset()
	s.mac.Write(s.buf)
	s.buf = append(s.buf[:0], tenantID...)
	s.buf = append(s.buf, '/')
	s.buf = append(s.buf, clientID...)
	s.buf = append(s.buf, '/')
	s.buf = append(s.buf, serverID...)
	s.buf = append(s.buf, '/')
	s.buf = s.mac.Sum(s.buf)
	key := string(s.buf)
	if cap(s.buf) <= 4096 { // a huge presented secret is not kept alive in the pool
		k.pool.Put(s)
	}
	return key
}
