import Testing
import VaultStore

/// Path splitting without Foundation's one-character trap.
@Suite struct PathNameTests {
    @Test(arguments: [
        ("a", ".", "a"), ("-", ".", "-"), ("/a", "/", "a"), ("x/y", "x", "y"), ("x/y/", "x", "y"),
        ("/", "/", "/"), ("x//y", "x", "y"), ("./v", ".", "v"), ("/tmp/k/vault.db", "/tmp/k", "vault.db"),
    ])
    func splits(path: String, directory: String, base: String) {
        #expect(PathName.directory(of: path) == directory)
        #expect(PathName.base(of: path) == base)
    }
}
