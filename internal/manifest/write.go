package manifest

import (
	"bufio"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// WriteYAML prints objects as one YAML stream, each document after "---".
func WriteYAML(w io.Writer, objs []*unstructured.Unstructured) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, o := range objs {
		if _, err := bw.WriteString("---\n"); err != nil {
			return err
		}
		if err := EncodeYAML(bw, o.Object); err != nil {
			return err
		}
	}
	return bw.Flush()
}
