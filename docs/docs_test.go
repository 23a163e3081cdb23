// Package docs holds the tests that keep the repository's documentation
// true: links resolve, cited paths exist, every fuzz target is run by
// `task fuzz`.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md"}, files...)
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	citedPath = regexp.MustCompile("`((?:cmd|pkg|internal|deployments|examples|api)/[A-Za-z0-9_./-]*)")
)

// TestLinksAndPaths checks every relative Markdown link and every cited
// repository path of README.md and docs/*.md.
func TestLinksAndPaths(t *testing.T) {
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s: broken link %s", f, m[1])
			}
		}
		for _, m := range citedPath.FindAllStringSubmatch(string(b), -1) {
			p := strings.TrimSuffix(strings.TrimSuffix(m[1], "..."), "/")
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("%s: cites %s, which does not exist", f, m[1])
			}
		}
	}
}

// TestNoForeignDocs checks that nothing in the repository cites documents
// it does not hold.
func TestNoForeignDocs(t *testing.T) {
	bad := []string{"DESIGN" + ".md", "../" + "shared"}
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || strings.HasPrefix(d.Name(), "data")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !scannedFile(p) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range bad {
			if strings.Contains(string(b), s) {
				t.Errorf("%s mentions %s", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scannedFile reports whether TestNoForeignDocs reads the file at p: Go
// sources, Markdown, YAML and shell scripts.
func scannedFile(p string) bool {
	for _, ext := range []string{".go", ".md", ".yml", ".yaml", ".sh"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)

// TestTaskFuzzRunsEveryTarget checks that `task fuzz` names every fuzz
// target of the repository, with its package.
func TestTaskFuzzRunsEveryTarget(t *testing.T) {
	task, err := os.ReadFile("../Taskfile.yml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		pkg := "./" + filepath.ToSlash(strings.TrimPrefix(filepath.Dir(p), "../")) + "/"
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(b), -1) {
			n++
			want := "-fuzz '^" + m[1] + "$' -fuzztime {{.FUZZTIME}} " + pkg
			if !strings.Contains(string(task), want) {
				t.Errorf("Taskfile.yml's fuzz task lacks %s", want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("found no fuzz target")
	}
}
