package sampleapp

import (
	"fmt"
	"regexp"
)

// bookinfoImage matches a container image line of the Bookinfo manifests,
// e.g. "image: registry.istio.io/release/examples-bookinfo-reviews-v2:1.20.3".
var bookinfoImage = regexp.MustCompile(`(?m)^(\s*)(-\s+)?image:\s*\S*examples-bookinfo-(productpage|details|reviews|ratings)-(v\d+)(:\S+)?\s*$`)

// MapBookinfo rewrites the Bookinfo manifests so that every service runs the
// sample app image with the role and version of the image it replaces, and
// says how many images it replaced. The rest of the text is kept as written.
func MapBookinfo(in []byte, image string) ([]byte, int, error) {
	n := 0
	out := bookinfoImage.ReplaceAllFunc(in, func(line []byte) []byte {
		m := bookinfoImage.FindSubmatch(line)
		indent := string(m[1])
		if len(m[2]) > 0 {
			// "- image:" opens the container: the following keys align after the dash.
			indent += fmt.Sprintf("%*s", len(m[2]), "")
		}
		n++
		return fmt.Appendf(nil, "%s%simage: %s\n%sargs: [\"--role=%s\", \"--version=%s\"]", m[1], m[2], image, indent, m[3], m[4])
	})
	if n == 0 {
		return nil, 0, fmt.Errorf("no Bookinfo image (examples-bookinfo-<service>-<version>) found")
	}
	return out, n, nil
}
