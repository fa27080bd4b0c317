package analyze

import (
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"mesh.dev/mesh/internal/resource"
)

// decodePool hands batches of parsed objects to a Builder on other
// goroutines, so that decoding one batch overlaps parsing the next. Files
// are already read in parallel, but a single large file was parsed and
// decoded in turn on one core; decoding is more than half of that work.
type decodePool struct {
	b *Builder
	g errgroup.Group

	mu sync.Mutex
	// firstSeq and firstErr keep the error of the earliest object, so a
	// file with several bad documents reports the same one on every run.
	firstSeq int
	firstErr error
}

func newDecodePool(b *Builder) *decodePool {
	p := &decodePool{b: b}
	p.g.SetLimit(runtime.GOMAXPROCS(0))
	return p
}

// add decodes raws on a pool goroutine, waiting for one to be free; it
// returns an error once any batch has failed, which stops the walk.
func (p *decodePool) add(raws []*resource.Raw) error {
	if err := p.err(); err != nil {
		return err
	}
	p.g.Go(func() error {
		if err := p.b.Add(raws); err != nil {
			p.fail(raws[0].Seq, err)
		}
		return nil
	})
	return nil
}

// wait waits for every batch and returns the earliest object's error.
func (p *decodePool) wait() error {
	_ = p.g.Wait()
	return p.err()
}

func (p *decodePool) fail(seq int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstErr == nil || seq < p.firstSeq {
		p.firstSeq, p.firstErr = seq, err
	}
}

func (p *decodePool) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstErr
}
