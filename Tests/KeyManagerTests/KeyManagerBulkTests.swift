import Foundation
import KISAPI
import KISMock
import KeyManager
import Testing
import VaultCrypto
import VaultStore

@Suite struct KeyManagerBulkTests {
    /// A run whose caller goes away (an agent's client interrupted) stops sending, reports
    /// every account, and gives back the leases it claimed for requests it never sent.
    @Test func aCancelledRunStopsAndReleasesItsLeases() async throws {
        let f = try await ManagerFixture.make(count: 200) { $0.latencyMilliseconds = 40 }
        let m = try f.manager()
        let names = f.accounts.map(\.name)
        var options = BulkOptions(kind: .approval, mode: .issue)
        options.concurrency = 4
        let progress = BulkProgress(total: names.count)
        let run = Task { try await m.bulk(accounts: names, options: options, progress: progress) }
        // Cancelled once it is under way (an event, not a sleep of a guessed length).
        while progress.counts.done < 8 { await Task.yield() }
        run.cancel()
        let results = try await run.value
        #expect(results.count == 200)
        let interrupted = results.filter { $0.errorCode == "not-attempted" }
        #expect(!interrupted.isEmpty && f.requests("/oauth2/Approval") < 200)
        let stored = try f.vault.vault.issuanceSnapshots(kind: .approval)
        #expect(stored.allSatisfy { $0.leaseOwner == nil }, "a lease left for a request never sent")
        #expect(stored.filter { $0.current != nil }.count == results.filter { $0.status == .issued }.count)
        await m.client.shutdown()
        await f.close()
    }

    /// Leases are claimed a chunk ahead of the requests. When requests are slow, a claim
    /// that waited is renewed before its request goes: its lease is held and the token
    /// minute counts from the request, not from the claim. Here a chunk of 8 is claimed at
    /// once and two requests of 400 ms run at a time: without renewal the last of the chunk
    /// would be sent 1.2 s after its claim (for approval keys, with leases of 0.4 s, its
    /// lease run out; for tokens, KIS's minute counted from 1.2 s before the request).
    @Test(arguments: [CredentialKind.approval, .token]) func aClaimMadeAheadIsRenewedBeforeItsRequest(_ kind: CredentialKind) async throws {
        let f = try await ManagerFixture.make(count: 10) { $0.latencyMilliseconds = 400 }
        let m = try f.manager(leaseDuration: kind == .approval ? 0.4 : 60)
        var options = BulkOptions(kind: kind, mode: .issue)
        options.concurrency = 2
        let results = try await m.bulk(accounts: f.accounts.map(\.name), options: options)
        #expect(results.allSatisfy { $0.status == .issued }, "\(results.filter { $0.status != .issued })")
        #expect(f.requests(kind == .approval ? "/oauth2/Approval" : "/oauth2/tokenP") == 10, "each account issued once")
        // The schedule, not a timing: two workers, so only two requests can have gone before
        // the first answer came. Unrenewed, all eight claimed at once would carry their
        // claim's time as their request time, before any answer.
        let snapshots = try f.vault.vault.issuanceSnapshots(kind: kind)
        let sent = try snapshots.map { try #require($0.lastRequestAt) }
        let answers = snapshots.compactMap { $0.current?.issuedAt }
        let firstAnswer = try #require(answers.min())
        #expect(sent.filter { $0 < firstAnswer }.count <= options.concurrency, "request times \(sent.sorted()), first answer \(firstAnswer)")
        #expect(snapshots.allSatisfy { $0.leaseOwner == nil })
        await m.client.shutdown()
        await f.close()
    }

    /// An account removed while its claim, made a chunk ahead, waits for a worker: it is
    /// reported as removed (`not-found`), not as issued (nothing of it can be stored) and
    /// not as an appkey KIS rejected; the others are issued and stored.
    @Test func anAccountRemovedDuringTheRunIsReportedSo() async throws {
        let f = try await ManagerFixture.make(count: 6) { $0.latencyMilliseconds = 300 }
        let m = try f.manager()
        var options = BulkOptions(kind: .approval, mode: .issue)
        options.concurrency = 1
        let names = f.accounts.map(\.name)
        let progress = BulkProgress(total: names.count)
        let run = Task { try await m.bulk(accounts: names, options: options, progress: progress) }
        // Once the first request is on its way, every account of the chunk is claimed.
        while f.requests("/oauth2/Approval") < 1 { await Task.yield() }
        try f.vault.removeAccount(names[5])
        let results = try await run.value
        let removed = try #require(results.first { $0.account == names[5] })
        #expect(removed.status == .failed && removed.errorCode == BulkItemResult.notFoundCode, "\(removed)")
        #expect(removed.message?.contains("removed during the run") == true && removed.message?.contains("rejected") == false, "\(removed)")
        #expect(results.filter { $0.status == .issued }.count == 5)
        #expect(try f.vault.vault.issuanceSnapshots(kind: .approval).filter { $0.current != nil }.count == 5)
        await m.client.shutdown()
        await f.close()
    }

    @Test func bulkIssuesSkipsAndRotates() async throws {
        let f = try await ManagerFixture.make(count: 120)
        let m = try f.manager()
        let names = f.accounts.map(\.name)
        var options = BulkOptions(kind: .approval, mode: .issue)
        options.concurrency = 16
        let first = try await m.bulk(accounts: names, options: options)
        #expect(first.count == 120 && first.allSatisfy { $0.status == .issued })
        let second = try await m.bulk(accounts: names, options: options)
        #expect(second.allSatisfy { $0.status == .skipped })
        options.dryRun = true
        options.force = true
        #expect(try await m.bulk(accounts: names, options: options).allSatisfy { $0.status == .wouldIssue })
        let rotated = try await m.bulk(accounts: Array(names.prefix(10)), options: BulkOptions(kind: .approval, mode: .rotate))
        #expect(rotated.allSatisfy { $0.status == .rotated })
        #expect(f.requests("/oauth2/Approval") == 130)
        let statuses = try f.vault.vault.issuanceSnapshots(kind: .approval)
        #expect(statuses.allSatisfy { $0.current != nil && $0.leaseOwner == nil })
        #expect(try f.vault.verifyAudit().isIntact)
        await m.client.shutdown()
        await f.close()
    }

    @Test func bulkWithInjectedFaultsAccountsForEveryAccount() async throws {
        let f = try await ManagerFixture.make(count: 150) {
            $0.failRate = 0.35
            $0.faults = [.serverError, .html, .truncated, .empty, .drop]
            $0.seed = 42
        }
        let m = try f.manager(client: try f.client(retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.005, maxDelay: 0.01, maxTotal: 5)))
        var options = BulkOptions(kind: .approval, mode: .issue)
        options.concurrency = 12
        let results = try await m.bulk(accounts: f.accounts.map(\.name), options: options)
        let issued = results.filter { $0.status == .issued }
        let failed = results.filter { $0.status == .failed }
        #expect(issued.count + failed.count == 150)
        #expect(!failed.isEmpty && !issued.isEmpty)
        #expect(failed.allSatisfy { $0.errorCode != nil && $0.message?.contains($0.account) == true })
        // Stored exactly for the issued ones, nothing for the failed ones.
        let snapshots = Dictionary(uniqueKeysWithValues: try f.vault.vault.issuanceSnapshots(kind: .approval).map { ($0.account, $0) })
        #expect(issued.allSatisfy { snapshots[$0.account]?.current != nil })
        #expect(failed.allSatisfy { snapshots[$0.account]?.current == nil && snapshots[$0.account]?.lastError != nil })
        // A second run finishes the rest once KIS behaves (faults are per request: retry).
        let again = try await m.bulk(accounts: f.accounts.map(\.name), options: options)
        #expect(again.filter { $0.status == .skipped }.count == issued.count)
        await m.client.shutdown()
        await f.close()
    }

    @Test func rejectedAccountsFailWithoutRetry() async throws {
        let f = try await ManagerFixture.make(count: 6)
        // One account whose secret KIS will not accept.
        var changes = AccountChanges()
        changes.credentials = (.init(utf8: f.accounts[0].appkey), .init(utf8: String(repeating: "x", count: 180)))
        try f.vault.editAccount(f.accounts[0].name, changes)
        let m = try f.manager()
        let results = try await m.bulk(accounts: f.accounts.map(\.name), options: BulkOptions(kind: .approval, mode: .issue))
        #expect(results[0].status == .failed && results[0].errorCode == "EGW00105")
        #expect(results.dropFirst().allSatisfy { $0.status == .issued })
        #expect(f.requests("/oauth2/Approval") == 6)
        let rerun = try await m.bulk(accounts: f.accounts.map(\.name), options: BulkOptions(kind: .approval, mode: .issue))
        #expect(rerun[0].status == .failed && rerun[0].errorCode == "EGW00105")
        #expect(f.requests("/oauth2/Approval") == 6)
        await m.client.shutdown()
        await f.close()
    }

    @Test func unreachableHostFailsEveryAccountAsUnavailable() async throws {
        let f = try await ManagerFixture.make(count: 3)
        var configuration = KISClientConfiguration(endpoints: KISEndpoints(both: "http://127.0.0.1:9"))
        configuration.retry = RetryPolicy(maxAttempts: 2, baseDelay: 0.01, maxDelay: 0.01, maxTotal: 5)
        configuration.connectTimeout = 0.5
        let m = try f.manager(client: try KISClient(configuration: configuration))
        let results = try await m.bulk(accounts: f.accounts.map(\.name), options: BulkOptions(kind: .token, mode: .issue))
        #expect(results.allSatisfy { $0.status == .failed && $0.errorCode == "unavailable" })
        #expect(try f.vault.vault.issuanceSnapshots(kind: .token).allSatisfy { $0.current == nil && $0.leaseOwner == nil })
        await m.client.shutdown()
        await f.close()
    }

    @Test func concurrentBulkRunsIssueEachAccountOnce() async throws {
        let f = try await ManagerFixture.make(count: 80) { $0.latencyMilliseconds = 5 }
        let a = try f.manager(separateConnection: true), b = try f.manager(separateConnection: true)
        let names = f.accounts.map(\.name)
        var options = BulkOptions(kind: .approval, mode: .issue)
        options.concurrency = 8
        async let ra = a.bulk(accounts: names, options: options)
        async let rb = b.bulk(accounts: names.reversed(), options: options)
        let (x, y) = try await (ra, rb)
        #expect(x.filter { $0.status == .failed }.isEmpty && y.filter { $0.status == .failed }.isEmpty)
        #expect(x.filter { $0.status == .issued }.count + y.filter { $0.status == .issued }.count == 80)
        #expect(f.requests("/oauth2/Approval") == 80)
        await a.client.shutdown()
        await b.client.shutdown()
        await f.close()
    }
}
