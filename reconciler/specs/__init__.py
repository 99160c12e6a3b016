"""Spec loading: a directory of YAML files becomes the desired state (the pipeline's first step).

Each step bounds what the next may see, so no file can take the daemon down:

    read        one path: regular files only, from trusted owners, bounded in size, never blocking
    yamlbounds  UTF-8, YAML's characters, nesting, documents and aliases, before the C loader
    parse       one file's text into API objects, or errors at the offending line and field
    positions   which line and column a field is at in a composed YAML tree
    assembly    the objects of every file become one desired state, checked across files
    loader      the directory, cached by inode, size and mtime (SpecLoader, once per pass)

Beside loading, writing (`wnr apply -f`, `wnr delete`), on the loader's own rules:

    writer      a file added or replaced, once a SpecLoader accepts the spec set it makes
    deletion    one object cut out of its file (the file removed when it was the only one)
    documents   where each document of a file's text lies, to cut one out byte for byte
"""
