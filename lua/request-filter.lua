-- Access control for a packaged Orthanc, which has no Authorization plugin:
-- every HTTP request is allowed or refused (403) by asking the patient-access
-- service, which holds the one decision function.
--
-- Who reaches Orthanc's HTTP port at all: RemoteAccessAllowed is false, and
-- AuthenticationEnabled is true with two users: nginx (ProxyUser, whose
-- credentials nginx adds to every request it forwards) and the service
-- itself (TrustedUsers). Requests of ProxyUser must carry a session token, in
-- the session cookie or a "token" header; the service decides with it.
--
-- Orthanc runs all Lua under one lock, so this filter serializes every
-- request while it waits for the service. Hence:
--   * grants are cached per token, for the validity the service gives, and a
--     grant of a study covers all its series, instances and UIDs, so a viewer
--     loading hundreds of slices costs one round trip, not hundreds;
--   * HttpTimeout (Orthanc's global setting) is low, and after a failed call
--     the service is not asked again for FailureBackoffSeconds: requests are
--     refused at once meanwhile (fail closed, and Orthanc stays responsive);
--   * any error in this script refuses the request (pcall), never a 500.

local settings = GetOrthancConfiguration()["PatientAccess"] or {}
local serviceUrl = settings["ServiceUrl"]
local secret = settings["Secret"]
local proxyUser = settings["ProxyUser"]
local cookieName = settings["CookieName"] or "authsvc_session"
local backoff = tonumber(settings["FailureBackoffSeconds"]) or 2
local trusted = {}
for _, name in ipairs(settings["TrustedUsers"] or {}) do
  trusted[name] = true
end

local MAX_TOKENS = 500       -- cached sessions before the cache is dropped whole
local MAX_KEYS = 20000       -- cached identifiers per session
local cache = {}             -- token -> { all = expiry, get = expiry, keys = { id = expiry }, n = count }
local cachedTokens = 0
local serviceDownUntil = 0

local OID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%x%x%x%x%-%x%x%x%x%x%x%x%x%-%x%x%x%x%x%x%x%x%-%x%x%x%x%x%x%x%x"
-- level -> { tail = true }: see keyOf. Missing: nothing is cached.
local cacheableTails = {}
for level, tails in pairs(settings["CacheableTails"] or {}) do
  cacheableTails[level] = {}
  for _, tail in ipairs(tails) do
    cacheableTails[level][tail] = true
  end
end
local subpathTails = {}     -- tails that may go deeper (/metadata/{name} ...)
for _, tail in ipairs(settings["CacheableSubpaths"] or {}) do
  subpathTails[tail] = true
end

if serviceUrl == nil or secret == nil or proxyUser == nil then
  print("patient-access: PatientAccess section incomplete; every request but the service's is refused")
end

local function tokenOf(headers)
  local token = headers["token"]
  if token ~= nil and token ~= "" then
    return token
  end
  local cookie = headers["cookie"]
  if cookie ~= nil then
    for name, value in string.gmatch(cookie, "([^=;%s]+)=([^;%s]*)") do
      if name == cookieName then
        return value
      end
    end
  end
  return nil
end

-- The Orthanc ID a GET names, when it is one of the shapes a study grant
-- covers; nil otherwise. The shapes are the service's route grammar
-- (authsvc/decision/routes.py): the tails below a study, series or instance
-- come from there through the configuration (CacheableTails), and never the
-- climb to the patient. Patient-level and DICOMweb routes are never answered
-- from the cache: a patient record lists studies a grant may not cover, and
-- a StudyInstanceUID may be shared by several patients' studies.
local function keyOf(uri)
  if string.find(uri, "..", 1, true) or string.find(uri, "//", 1, true)
      or string.find(uri, "%", 1, true) then
    return nil
  end
  local level, id, rest = string.match(uri, "^/(%l+)/(" .. OID .. ")(.*)$")
  if level ~= nil and cacheableTails[level] ~= nil then
    local tail, deeper = string.match(rest, "^/([%w%-]+)(.*)$")
    if rest == "" then
      tail, deeper = "", ""
    end
    if tail ~= nil and cacheableTails[level][tail] and (deeper == ""
        or (subpathTails[tail] and string.match(deeper, "^/[%w%._%-/]*[%w%._%-]$"))) then
      return id
    end
    return nil
  end
  return string.match(uri, "^/web%-viewer/series/(" .. OID .. ")$")
      or string.match(uri, "^/web%-viewer/is%-stable%-series/(" .. OID .. ")$")
      or string.match(uri, "^/web%-viewer/instances/%w+%-(" .. OID .. ")_%d+$")
      or ((string.match(uri, "^/web%-viewer/app/") or string.match(uri, "^/web%-viewer/libs/"))
          and "asset:web-viewer")
      or nil
end

local function cachedGrant(token, method, uri, query, now)
  local entry = cache[token]
  if entry == nil then
    return false
  end
  if entry.all ~= nil and entry.all > now then
    return true
  end
  if method ~= "GET" then
    return false
  end
  if entry.get ~= nil and entry.get > now then
    return true
  end
  if query ~= nil then
    return false  -- the service reads queries; the cache does not
  end
  local key = keyOf(uri)
  local expiry = key and entry.keys[key]
  return expiry ~= nil and expiry > now
end

local function remember(token, decision, now)
  local validity = tonumber(decision["validity"]) or 0
  if validity <= 0 then
    return
  end
  local entry = cache[token]
  if entry == nil then
    if cachedTokens >= MAX_TOKENS then
      cache = {}
      cachedTokens = 0
    end
    entry = { keys = {}, n = 0 }
    cache[token] = entry
    cachedTokens = cachedTokens + 1
  end
  local expiry = now + validity
  local scope = decision["scope"]
  if scope == "all" then
    entry.all = expiry
  elseif scope == "get" then
    entry.get = expiry
  elseif type(decision["keys"]) == "table" then
    if entry.n > MAX_KEYS then
      entry.keys = {}
      entry.n = 0
    end
    for _, key in ipairs(decision["keys"]) do
      if entry.keys[key] == nil then
        entry.n = entry.n + 1
      end
      entry.keys[key] = expiry
    end
  end
end

local function ask(method, uri, query, token)
  if query ~= nil then
    uri = uri .. "?" .. query
  end
  local answer = HttpPost(serviceUrl .. "/internal/authorize",
                          DumpJson({ method = method, uri = uri, token = token }, true),
                          { ["Content-Type"] = "application/json",
                            ["X-Authsvc-Secret"] = secret })
  if answer == nil then
    return nil
  end
  local decision = ParseJson(answer)
  if type(decision) ~= "table" then
    return nil
  end
  return decision
end

local function filter(method, uri, username, headers)
  if username ~= nil and trusted[username] then
    return true
  end
  if proxyUser == nil or username ~= proxyUser or serviceUrl == nil or secret == nil then
    return false
  end
  local token = tokenOf(headers)
  if token == nil or #token < 20 or #token > 128 then
    return false
  end
  -- The query string, which Orthanc does not show this filter: nginx passes
  -- it in this header (only nginx has ProxyUser's credentials).
  local query = headers["x-authsvc-query"]
  if query == "" then
    query = nil
  end
  local now = os.time()
  if cachedGrant(token, method, uri, query, now) then
    return true
  end
  if now < serviceDownUntil then
    return false
  end
  local decision = ask(method, uri, query, token)
  if decision == nil then
    serviceDownUntil = os.time() + backoff
    print("patient-access: no answer from the service; refusing requests for "
          .. backoff .. " s")
    return false
  end
  if decision["granted"] == true then
    remember(token, decision, now)
    return true
  end
  return false
end

function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  local ok, allowed = pcall(filter, method, uri, username, httpHeaders or {})
  if not ok then
    print("patient-access: request filter error; request refused")
    return false
  end
  return allowed == true
end
