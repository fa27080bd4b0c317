package analyze

import (
	"encoding/binary"
	"slices"
	"sync"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// labelMaps shares equal label maps between the objects of a snapshot.
// Generated and templated configuration repeats the same few label sets
// over and over (a Service's labels, its selector and its Deployment's
// labels are usually one set), and a Go map costs a few hundred bytes
// however small it is: on 10k resources this is a tenth of the snapshot.
// Maps handed out here are shared, so nothing may modify them; analyzers
// only read labels.
type labelMaps struct {
	mu   sync.Mutex
	sets map[string]map[string]string
	buf  []byte
}

func newLabelMaps() *labelMaps { return &labelMaps{sets: map[string]map[string]string{}} }

// share returns the map equal to m that was seen first (m itself when it
// is the first).
func (l *labelMaps) share(m map[string]string) map[string]string {
	if len(m) == 0 || len(m) > 16 {
		return m
	}
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = l.buf[:0]
	for _, k := range keys {
		v := m[k]
		l.buf = append(binary.AppendUvarint(l.buf, uint64(len(k))), k...)
		l.buf = append(binary.AppendUvarint(l.buf, uint64(len(v))), v...)
	}
	if shared, ok := l.sets[string(l.buf)]; ok {
		return shared
	}
	l.sets[string(l.buf)] = m
	return m
}

// shareObject replaces the label maps of r with shared ones.
func (l *labelMaps) shareObject(r *Resource) {
	r.Meta.Labels = l.share(r.Meta.Labels)
	switch o := r.Object.(type) {
	case *networking.DestinationRule:
		for _, ss := range o.Spec.Subsets {
			if ss != nil {
				ss.Labels = l.share(ss.Labels)
			}
		}
	case *corev1.Service:
		o.Spec.Selector = l.share(o.Spec.Selector)
	default:
		if t := podTemplate(o); t != nil {
			t.Labels = l.share(t.Labels)
		}
	}
}
