package rollout

import (
	"reflect"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sameSpec reports whether two versions of a resource ask for the same
// config: their specs are equal (Istio's are protobuf messages, compared
// as such; the Gateway API's plain structs). Metadata is not compared, so
// editing only the rollout annotations changes no version.
func sameSpec(a, b metav1.Object) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a == b {
		return true
	}
	sa, oka := specOf(a)
	sb, okb := specOf(b)
	if !oka || !okb {
		return false
	}
	if pa, ok := sa.Addr().Interface().(proto.Message); ok {
		if pb, ok := sb.Addr().Interface().(proto.Message); ok {
			return proto.Equal(pa, pb)
		}
	}
	return equality.Semantic.DeepEqual(sa.Interface(), sb.Interface())
}

func specOf(o metav1.Object) (reflect.Value, bool) {
	v := reflect.ValueOf(o)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName("Spec")
	return f, f.IsValid() && f.CanAddr()
}
