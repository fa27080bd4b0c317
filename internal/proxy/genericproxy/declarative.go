package genericproxy

func compileDeclarative(s *structReader) (Codec, error) {
	return nil, s.err
}
