"""The test suite: a package, so that tests and bench/ import its helpers as
`tests.<module>` from the repository's root (CONTRIBUTING.md, "Tests")."""
