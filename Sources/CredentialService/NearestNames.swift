/// The names nearest to one that was mistyped (`a-001` when `a-0001` exists, `gte` for
/// `get`), by edit distance with adjacent transpositions counted as one edit.
public enum NearestNames {
    /// Up to `most` of `names` within `limit` edits of `name`, nearest first (ties by name).
    public static func to(_ name: String, among names: [String], limit: Int, most: Int = 3) -> [String] {
        // Names are short: a long one is near none, and would cost the distance its square.
        guard name.count <= 64 else { return [] }
        let scored = names.map { ($0, distance($0, name)) }.filter { $0.1 <= limit }
        return scored.sorted { a, b in a.1 != b.1 ? a.1 < b.1 : a.0 < b.0 }.prefix(most).map(\.0)
    }

    /// Edit distance (insertions, deletions, substitutions, adjacent transpositions).
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}
