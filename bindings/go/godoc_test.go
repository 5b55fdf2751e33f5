package latchkey_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// Every exported identifier of the package has a doc comment (a constant or
// variable may have its group's), so `go doc` documents the whole API.
func TestGoDocIsComplete(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name.Name == "latchkey" {
			files = append(files, f)
		}
	}
	pkg, err := doc.NewFromFiles(fset, files, "latchkey")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	need := func(what, text string) {
		if strings.TrimSpace(text) == "" {
			missing = append(missing, what)
		}
	}
	need("package latchkey", pkg.Doc)
	values := func(vs []*doc.Value) {
		for _, v := range vs {
			for _, name := range v.Names {
				if ast.IsExported(name) {
					need(name, v.Doc)
				}
			}
		}
	}
	funcs := func(prefix string, fs []*doc.Func) {
		for _, f := range fs {
			if ast.IsExported(f.Name) {
				need(prefix+f.Name, f.Doc)
			}
		}
	}
	values(pkg.Consts)
	values(pkg.Vars)
	funcs("", pkg.Funcs)
	for _, typ := range pkg.Types {
		need(typ.Name, typ.Doc)
		values(typ.Consts)
		values(typ.Vars)
		funcs("", typ.Funcs)
		funcs(typ.Name+".", typ.Methods)
		// Exported fields of exported structs.
		for _, spec := range typ.Decl.Specs {
			st, ok := spec.(*ast.TypeSpec).Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, field := range st.Fields.List {
				for _, name := range field.Names {
					if name.IsExported() && field.Doc == nil && field.Comment == nil {
						missing = append(missing, typ.Name+"."+name.Name)
					}
				}
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("exported identifiers without a doc comment: %s", strings.Join(missing, ", "))
	}
}
