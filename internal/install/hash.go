package install

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// annotationHash holds a digest of the object as mesh last applied it. With
// it a re-install can tell, from one read, that the live object already has
// exactly what the rendering sets and skip sending it: the digest catches a
// rendering that dropped a field (which an apply would remove), and the
// field-by-field comparison catches someone else changing a field mesh set.
const annotationHash = "install.mesh.io/applied-hash"

func setAppliedHash(o *unstructured.Unstructured) {
	ann := o.GetAnnotations()
	delete(ann, annotationHash)
	if len(ann) == 0 {
		ann = nil
	}
	o.SetAnnotations(ann)
	b, err := json.Marshal(o.Object) // map keys are sorted, so this is stable
	if err != nil {
		return
	}
	sum := sha256.Sum256(b)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[annotationHash] = hex.EncodeToString(sum[:12])
	o.SetAnnotations(ann)
}

// upToDate reports whether live holds everything want sets, as last applied by mesh.
func upToDate(want *unstructured.Unstructured) func(live *unstructured.Unstructured) bool {
	return func(live *unstructured.Unstructured) bool {
		h := want.GetAnnotations()[annotationHash]
		return h != "" && live.GetAnnotations()[annotationHash] == h &&
			live.GetDeletionTimestamp() == nil && len(Drift(want.Object, live.Object)) == 0
	}
}
