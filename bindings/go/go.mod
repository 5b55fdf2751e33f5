module latchkey

go 1.24
