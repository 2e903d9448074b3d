// Pages and their URLs: the hash (#/audit) is the page, so reload and back/forward work.
// Pure functions: the hash comes in, a page name the user may see comes out.

export const PAGES = [
  { name: "vault", hash: "#/", label: "Vault" },
  { name: "dashboard", hash: "#/dashboard", label: "Dashboard" },
  { name: "audit", hash: "#/audit", label: "Audit", admin: true },
  { name: "users", hash: "#/users", label: "Users", admin: true },
  { name: "settings", hash: "#/settings", label: "Settings", admin: true },
  { name: "account", hash: "#/account", label: "Account" },
];

const BY_NAME = new Map(PAGES.map((p) => [p.name, p]));

/** The pages this user may open, in menu order. */
export function pagesFor(user) {
  const admin = user?.role === "admin";
  return PAGES.filter((p) => admin || !p.admin);
}

/** "#/audit" -> "audit"; anything unknown (or "", "#", "#/") -> "vault". */
export function parseHash(hash) {
  const name = String(hash ?? "").replace(/^#\/?/, "").split(/[/?]/)[0];
  return BY_NAME.has(name) ? name : "vault";
}

/** The page to show for this hash and user: an admin page for a non-admin is the vault. */
export function pageFor(hash, user) {
  const name = parseHash(hash);
  return pagesFor(user).some((p) => p.name === name) ? name : "vault";
}

export function hashFor(name) {
  return BY_NAME.get(name)?.hash ?? "#/";
}
