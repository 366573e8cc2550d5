package gitops

import (
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func blobObject(content string) plumbing.EncodedObject {
	o := &plumbing.MemoryObject{}
	o.SetType(plumbing.BlobObject)
	_, _ = o.Write([]byte(content))
	return o
}

// TestObjectCacheCountsOverhead: the cache's budget holds what objects cost, overhead included, so
// that many small objects cannot hold several times the budget; the least recently used go first.
func TestObjectCacheCountsOverhead(t *testing.T) {
	small := func(i int) plumbing.EncodedObject { return blobObject(fmt.Sprintf("%08d", i)) } // 8 bytes each
	c := newObjectCache(10 * (objectOverhead + 8))
	var objs []plumbing.EncodedObject
	for i := range 25 {
		objs = append(objs, small(i))
		c.Put(objs[i])
		if _, ok := c.Get(objs[0].Hash()); !ok && i < 20 {
			t.Fatalf("after %d puts: the object read after every put was evicted", i+1)
		}
	}
	if got := len(c.byKey); got != 10 {
		t.Errorf("holds %d small objects, want 10 (the budget counts %d bytes of overhead each)", got, objectOverhead)
	}
	if c.size > c.max {
		t.Errorf("size %d over the budget %d", c.size, c.max)
	}
	if _, ok := c.Get(objs[0].Hash()); !ok {
		t.Error("the most recently used object was evicted")
	}
	if _, ok := c.Get(objs[1].Hash()); ok {
		t.Error("an old, unused object is still held")
	}
	big := blobObject(string(make([]byte, 11*(objectOverhead+8))))
	c.Put(big)
	if _, ok := c.Get(big.Hash()); ok {
		t.Error("an object bigger than the whole budget was held")
	}
	c.Put(objs[24]) // again: its cost is counted once
	if c.size > c.max || len(c.byKey) != 10 {
		t.Errorf("after a second put of one object: %d objects, %d bytes", len(c.byKey), c.size)
	}
	c.Clear()
	if len(c.byKey) != 0 || c.size != 0 || c.order.Len() != 0 {
		t.Errorf("after Clear: %d objects, %d bytes", len(c.byKey), c.size)
	}
}
