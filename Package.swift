// swift-tools-version:6.2
import PackageDescription

/// Strict settings for our own targets (STYLE.md, "Compiler settings").
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "kisvault",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kisvault", targets: ["kisvault"]),
        .executable(name: "kis-mock", targets: ["kis-mock"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // The team vault on PostgreSQL, with TLS through NIOSSL.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // Declared because the agent names HTTP fields itself; Hummingbird brings it anyway.
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // KIS's WebSocket: kis-mock serves it, `approval check` speaks it.
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    ],
    targets: [
        // The only door to libsodium (Debian's libsodium-dev 1.0.18).
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // Fills a closed stdin/stdout/stderr before the Swift runtime opens anything.
        .target(name: "CStdStreams"),
        // What the KIS client and the team vault both decide about a URL: whether its host is
        // this machine (by address), and what a message may show of it.
        .target(name: "NetworkRules", swiftSettings: strict),
        .target(
            name: "VaultCrypto",
            dependencies: ["CSodium"],
            swiftSettings: strict
        ),
        .target(
            name: "VaultStore",
            dependencies: [
                "NetworkRules",
                "VaultCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The account file format shared by `kisvault account import` and `kis-mock`.
        .target(
            name: "AccountFile",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(
            // The files of the other KIS clients that kisvault writes (token caches, the
            // sample's kis_devlp.yaml); their readers are AccountFile's, kept light for the
            // fuzzers.
            name: "ClientFormats",
            dependencies: ["AccountFile", "CredentialService", "VaultCrypto", "VaultStore"],
            swiftSettings: strict
        ),
        .target(
            name: "KISAPI",
            dependencies: [
                "NetworkRules",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "KISMock",
            dependencies: [
                "AccountFile", "VaultCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "KeyManager",
            dependencies: ["VaultStore", "VaultCrypto", "KISAPI", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The one boundary front-ends speak to: the CredentialService protocol, its wire
        // types, the error codes, and the implementation over a vault opened here.
        .target(
            name: "CredentialService",
            dependencies: [
                "KeyManager", "VaultStore", "VaultCrypto", "KISAPI",
            ],
            swiftSettings: strict
        ),
        // The agent: an unlocked vault served on a Unix socket, and the client the CLI uses.
        .target(
            name: "KisvaultAgent",
            dependencies: [
                "CredentialService", "KeyManager", "VaultStore", "VaultCrypto", "KISAPI", "NetworkRules",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "KisvaultCLI",
            dependencies: [
                "ClientFormats", "CredentialService", "KisvaultAgent", "CStdStreams",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kisvault",
            dependencies: ["KisvaultCLI", "KisvaultAgent"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "kis-mock",
            dependencies: [
                "KISMock", "KISAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Test helpers shared by several test targets.
        .target(
            name: "VaultTestSupport",
            dependencies: ["VaultCrypto", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")],
            path: "Tests/VaultTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "VaultCryptoTests",
            dependencies: ["VaultCrypto"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "VaultStoreTests",
            dependencies: ["VaultStore", "VaultCrypto", "VaultTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KISAPITests",
            dependencies: ["KISAPI", "KISMock", "NetworkRules", "VaultTestSupport", .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                           .product(name: "NIOWebSocket", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KisvaultAgentTests",
            dependencies: ["KisvaultAgent", "CredentialService", "KeyManager", "KISAPI", "KISMock", "VaultStore", "VaultCrypto", "VaultTestSupport",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "HummingbirdTesting", package: "hummingbird")],
            swiftSettings: strict
        ),
        // Replays the corpus `make fuzz` keeps (Tests/Fuzz/corpus).
        .testTarget(
            name: "FuzzCorpusTests",
            dependencies: ["AccountFile", "KISAPI"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ClientFormatsTests",
            dependencies: ["ClientFormats", "AccountFile", "CredentialService", "VaultCrypto", "VaultStore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CredentialServiceTests",
            dependencies: ["CredentialService", "KeyManager", "KISAPI", "KISMock", "VaultStore", "VaultCrypto", "VaultTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KeyManagerTests",
            dependencies: ["KeyManager", "KISAPI", "KISMock", "VaultStore", "VaultCrypto", "VaultTestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KisvaultCLITests",
            // The executables are dependencies so that `swift test` builds the binaries the
            // end-to-end tests run.
            dependencies: ["KisvaultCLI", "KisvaultAgent", "CredentialService", "ClientFormats", "VaultStore", "VaultCrypto", "VaultTestSupport", "KISMock", "kisvault", "kis-mock",
                           .product(name: "GRDB", package: "GRDB.swift"), .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"), .product(name: "NIOWebSocket", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")],
            // The help texts the tests compare against, read from the source tree.
            exclude: ["Help"],
            swiftSettings: strict
        ),
    ]
)
