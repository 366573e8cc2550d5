package gitops

import (
	"container/list"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
)

// objectCache is go-git's cache of decoded objects with a budget that counts what an object costs
// in memory, not only its content: go-git's ObjectLRU counts content bytes, and a repository's
// objects are mostly small (a 100-byte ConfigMap costs ~300 bytes held: the object, its buffer's
// spare capacity, the list element and the map entry), so its 16 MiB held 140,000 blobs and 45 MB
// while a first event read every file of a 200,000-file tip.
type objectCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // most recently used first
	byKey map[plumbing.Hash]*list.Element
}

var _ cache.Object = (*objectCache)(nil)

// objectOverhead is what holding one object costs beside its content (measured with a heap profile
// of a first event on 200,000 files: ~280 bytes an object; rounded up for the buffer's slack).
const objectOverhead = 320

func newObjectCache(max int64) *objectCache {
	return &objectCache{max: max, order: list.New(), byKey: map[plumbing.Hash]*list.Element{}}
}

func cost(o plumbing.EncodedObject) int64 { return o.Size() + objectOverhead }

// Put implements cache.Object.
func (c *objectCache) Put(o plumbing.EncodedObject) {
	n := cost(o)
	if n > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[o.Hash()]; ok {
		c.size += n - cost(e.Value.(plumbing.EncodedObject))
		e.Value = o
		c.order.MoveToFront(e)
	} else {
		c.byKey[o.Hash()] = c.order.PushFront(o)
		c.size += n
	}
	for c.size > c.max {
		last := c.order.Back()
		old := last.Value.(plumbing.EncodedObject)
		c.order.Remove(last)
		delete(c.byKey, old.Hash())
		c.size -= cost(old)
	}
}

// Get implements cache.Object.
func (c *objectCache) Get(h plumbing.Hash) (plumbing.EncodedObject, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[h]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(plumbing.EncodedObject), true
}

// Clear implements cache.Object.
func (c *objectCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.byKey)
	c.size = 0
}
