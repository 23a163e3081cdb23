package testutil

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// DocSection returns the section of a Markdown document of this repository
// (path relative to the module root, e.g. "README.md" or "docs/cli.md")
// that starts at the heading line (e.g. "### Sidecar flags"), without the
// heading, up to the next heading of the same or a higher level. Lines in
// fenced code blocks are never headings (a "# comment" in a shell block
// does not end a section). It fails the test when the heading is missing,
// so that a test reading a document notices when the document moved on.
func DocSection(t testing.TB, path, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(), path))
	if err != nil {
		t.Fatal(err)
	}
	section, ok := docSection(string(b), heading)
	if !ok {
		t.Fatalf("%s has no %q section", path, heading)
	}
	return section
}

func docSection(doc, heading string) (string, bool) {
	level := headingLevel(heading)
	var out []string
	inFence, in := false, false
	for _, line := range strings.SplitAfter(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if !inFence && !strings.HasPrefix(line, "```") {
			if l := headingLevel(line); l > 0 {
				if in && l <= level {
					break
				}
				if !in && strings.TrimRight(line, "\n") == heading {
					in = true
					continue
				}
			}
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.Join(out, ""), in
}

// headingLevel is the level of an ATX heading line ("## x" is 2), or 0.
func headingLevel(line string) int {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || n == len(line) || line[n] != ' ' {
		return 0
	}
	return n
}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// ShBlocks returns the contents of the ```sh fenced blocks of a Markdown
// text, in order.
func ShBlocks(text string) []string {
	var blocks []string
	for _, m := range shBlock.FindAllStringSubmatch(text, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}
