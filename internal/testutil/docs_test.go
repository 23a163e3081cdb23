package testutil

import "testing"

func TestDocSection(t *testing.T) {
	const doc = "# T\n\n## A\n\na\n\n```sh\n# a comment, not a heading\nrun\n```\n\n### A.1\n\nsub\n\n## B\n\nb\n"
	for _, tc := range []struct {
		heading, want string
		found         bool
	}{
		{"## A", "\na\n\n```sh\n# a comment, not a heading\nrun\n```\n\n### A.1\n\nsub\n\n", true},
		{"### A.1", "\nsub\n\n", true},
		{"## B", "\nb\n", true},
		{"## C", "", false},
		{"## A.1", "", false},
	} {
		t.Run(tc.heading, func(t *testing.T) {
			got, found := docSection(doc, tc.heading)
			if found != tc.found || got != tc.want {
				t.Errorf("docSection(%q) = %q, %v; want %q, %v", tc.heading, got, found, tc.want, tc.found)
			}
		})
	}
	if blocks := ShBlocks(doc); len(blocks) != 1 || blocks[0] != "# a comment, not a heading\nrun\n" {
		t.Errorf("ShBlocks = %q", blocks)
	}
}
