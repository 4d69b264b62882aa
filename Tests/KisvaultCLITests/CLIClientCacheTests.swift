import Foundation
import KISMock
import Testing

/// `token export` against the real clients, installed from PyPI into a virtualenv the test
/// makes: each, started on the files kisvault wrote, uses kisvault's token and asks KIS (the
/// mock) for none. `make test` sets KISVAULT_REQUIRE_PYPI=1, so in CI an unreachable PyPI
/// fails the test instead of skipping it.
@Suite struct CLIClientCacheTests {
    /// The versions the formats were written against (docs/INTEGRATIONS.md), and what two of
    /// them import without declaring it (PyKis typing_extensions, mojito2 pandas).
    static let packages = ["python-kis==2.1.6", "kis-trader==0.12.2", "mojito2==0.1.6", "korea-investment-stock==0.19.0", "pyyaml==6.0.2",
                           "typing_extensions==4.12.2", "pandas==2.2.3"]

    static func pypiReachable() -> Bool {
        if ProcessInfo.processInfo.environment["KISVAULT_REQUIRE_PYPI"] == "1" { return true }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import socket; socket.create_connection(('pypi.org', 443), 5).close()"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }

    /// Starts one client the way its users do, on the token files in argv[2]. Whatever
    /// token request a client makes goes to the mock and is counted there: PyKis's hosts are
    /// module constants, kis-trader takes the poster, mojito2 posts through requests.post;
    /// nothing reaches KIS's hosts.
    static let clients = """
        import json, os, sys, urllib.request
        client, files, mock = sys.argv[1], sys.argv[2], os.environ["MOCK_URL"]
        appkey, appsecret, account = os.environ["T_APPKEY"], os.environ["T_APPSECRET"], os.environ["T_ACCOUNT"]

        def ask_mock(body):
            print("requested", file=sys.stderr)
            request = urllib.request.Request(mock + "/oauth2/tokenP", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
            with urllib.request.urlopen(request) as answer:
                return answer.status, json.load(answer)

        if client == "pykis":
            import pykis.kis
            pykis.kis.REAL_DOMAIN = pykis.kis.VIRTUAL_DOMAIN = mock
            kis = pykis.PyKis(id=os.environ["T_ID"], account=account, appkey=appkey, secretkey=appsecret, keep_token=files, use_websocket=False)
            print(kis.token.token)
        elif client == "kis-trader":
            from kis_trader._internal._auth import TokenManager
            manager = TokenManager(app_key=appkey, app_secret=appsecret, environment="real", cache_dir=files, post=lambda url, body: ask_mock(dict(body)))
            print(manager.access_token())
        elif client == "mojito2":
            import mojito, mojito.koreainvestment
            class Answer:
                def __init__(self, body): self.body = body
                def json(self): return self.body
            mojito.koreainvestment.requests.post = lambda url, headers=None, data=None: Answer(ask_mock(json.loads(data))[1])
            os.chdir(files)
            broker = mojito.KoreaInvestment(api_key=appkey, api_secret=appsecret, acc_no=account, mock=False)
            print(broker.access_token.removeprefix("Bearer "))
        elif client == "korea-investment-stock":
            from pathlib import Path
            from korea_investment_stock.token.manager import TokenManager
            from korea_investment_stock.token.storage import FileTokenStorage
            import korea_investment_stock.token.manager as manager_module
            class Answer:
                def __init__(self, status, body): self.status_code, self.body = status, body
                def raise_for_status(self): pass
                def json(self): return self.body
            manager_module.requests.post = lambda url, headers=None, json=None: Answer(*ask_mock(json))
            manager = TokenManager(storage=FileTokenStorage(Path(files) / "token.key"), base_url=mock, api_key=appkey, api_secret=appsecret)
            print(manager.get_valid_token().removeprefix("Bearer "))
        """

    @Test(.enabled("PyPI is unreachable, and the clients come from there (set KISVAULT_REQUIRE_PYPI=1 to fail instead)", { Self.pypiReachable() }))
    func theClientsPeopleRunUseTheExportedTokenAndAskForNone() async throws {
        let (box, mock, accounts) = try await CLICredentialTests.setUp(count: 5)
        let venv = box.dir + "/venv"
        let made = try await box.runAsync(["-m", "venv", venv], tool: "", wrapper: ["/usr/bin/env", "python3"], timeout: 120)
        try #require(made.status == 0, "python3 -m venv: \(made.stderr)")
        let installed = try await box.runAsync(["install", "--quiet", "--disable-pip-version-check"] + Self.packages,
                                               tool: "", wrapper: [venv + "/bin/pip"], timeout: 600)
        try #require(installed.status == 0, "pip install \(Self.packages): \(installed.stderr)")
        let script = box.write("clients.py", Self.clients)
        func start(_ client: String, _ account: MockAccount, files: String) async throws -> CLIResult {
            try await box.runAsync([script, client, files], env: [
                "MOCK_URL": mock.baseURL, "T_APPKEY": account.appkey, "T_APPSECRET": account.appsecret,
                "T_ACCOUNT": account.accountNo ?? "", "T_ID": "tester01",
            ], tool: "", wrapper: [venv + "/bin/python"], timeout: 120)
        }

        // The control: started on nothing, each client asks for a token of its own.
        for (client, account) in zip(["pykis", "kis-trader", "mojito2", "korea-investment-stock"], accounts.dropFirst()) {
            let empty = box.dir + "/empty-" + client
            try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
            let before = mock.requests("/oauth2/tokenP")
            let run = try await start(client, account, files: empty)
            #expect(mock.requests("/oauth2/tokenP") == before + 1, "\(client): \(run.stdout) \(run.stderr)")
        }

        let a = accounts[0]
        let issued = mock.requests("/oauth2/tokenP")
        // PyKis names its file after the HTS id: none stored → a clear error, no token asked for.
        let noID = try await box.runAsync(["token", "export", a.name, "--format", "pykis", "--dir", box.dir + "/pykis"])
        #expect(noID.status == 2 && noID.stderr.contains("no HTS id") && noID.stderr.contains("account edit \(a.name) --hts-id"), "\(noID.stderr)")
        // mojito2's file holds the appsecret: not without --plaintext.
        let clear = try await box.runAsync(["token", "export", a.name, "--format", "mojito2", "--dir", box.dir + "/mojito2"])
        #expect(clear.status == 2 && clear.stderr.contains("--plaintext"), "\(clear.stderr)")
        #expect(!FileManager.default.fileExists(atPath: box.dir + "/mojito2/token.dat"))
        #expect(mock.requests("/oauth2/tokenP") == issued)
        #expect(try await box.runAsync(["account", "edit", a.name, "--hts-id", "tester01"]).status == 0)

        for (client, extra) in [("pykis", [String]()), ("kis-trader", []), ("mojito2", ["--plaintext"]), ("korea-investment-stock", ["--plaintext"])] {
            let files = box.dir + "/" + client
            let export = try await box.runAsync(["token", "export", a.name, "--format", client, "--dir", files] + extra)
            #expect(export.status == 0, "\(client): \(export.stderr)")
            for name in try FileManager.default.contentsOfDirectory(atPath: files) {
                let mode = try FileManager.default.attributesOfItem(atPath: files + "/" + name)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(client): \(name)")
            }
            let before = mock.requests("/oauth2/tokenP")
            let run = try await start(client, a, files: files)
            #expect(run.status == 0 && !run.stderr.contains("requested"), "\(client): \(run.stdout) \(run.stderr)")
            #expect(mock.requests("/oauth2/tokenP") == before, "\(client) asked KIS for a token")
            let stored = try await box.runAsync(["token", "get", a.name])
            #expect(!stored.stdout.isEmpty && run.stdout == stored.stdout, "\(client) uses the token kisvault holds")
        }
        #expect(mock.requests("/oauth2/tokenP") == issued + 1, "one issuance, kisvault's")
        // The hand-outs of the app credentials are audited, one per export (the refused
        // PyKis export too: its HTS id was read from the vault to find it missing).
        let audit = try await box.runAsync(["audit", "list", "--account", a.name, "--format", "json"])
        #expect(audit.stdout.components(separatedBy: "\"token.export\"").count - 1 == 5, "\(audit.stdout)")
        await mock.stop()
    }
}
