-- Drives the host's search API (the internal port) with no answer cache in front:
-- every request is a real search. Used by bench/compare.sh. Lists and searches carry
-- `facets=none`, as the catalog component sends them (it shows no facets there);
-- `facets` asks for the genre counts, as the catalog's facets route does.
--
-- Environment:
--   MODE       search   /search/films?query=W&page_size=50, W uniform from WORDS_FILE
--              list     /search/films?sort=-imdb_rating&page_size=50&page_number=N,
--                       N uniform in 1..PAGES (the peer's films_page, uncached)
--              list_mix lists with a random sort and filter (none, genre, year range,
--                       rating range, type, access, genre+year), any page up to PAGES
--              facets   /search/films?query=W&page_size=1&facets=genre (the total and
--                       genre counts the catalog's /films/search/facets asks for)
--   DATA_DIR   the peer's load/data (words.txt, genre_ids.txt)
--   WORDS_FILE words file name in DATA_DIR (default words.txt)
--   PAGES      deepest page (default 100), PAGE_SIZE (default 50), SEED (default 1)
-- Ends with the peers' RESULT line: RESULT {"rps":...,"p50_ms":...,"p99_ms":...}
local mode = os.getenv("MODE") or "search"
local data_dir = os.getenv("DATA_DIR") or "data"
local pages = tonumber(os.getenv("PAGES") or "100")
local page_size = os.getenv("PAGE_SIZE") or "50"

local function lines(name)
  local t = {}
  for line in io.lines(data_dir .. "/" .. name) do
    if line ~= "" then t[#t + 1] = line end
  end
  return t
end

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local words = {}
if mode == "search" or mode == "facets" then
  words = lines(os.getenv("WORDS_FILE") or "words.txt")
end
local genres = {}
if mode == "list_mix" then genres = lines("genre_ids.txt") end

local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end

function init(args)
  math.randomseed(tonumber(os.getenv("SEED") or "1") * 1000 + (thread_id or 0))
end

local sorts = { "-imdb_rating", "imdb_rating", "-creation_date", "creation_date" }

local function list_mix()
  local path = "/search/films?facets=none&page_size=" .. page_size .. "&page_number=" .. math.random(1, pages)
    .. "&sort=" .. sorts[math.random(1, #sorts)]
  local filter = math.random(1, 7)
  if filter == 2 then
    path = path .. "&genre=" .. genres[math.random(1, #genres)]
  elseif filter == 3 then
    local from = math.random(1950, 2015)
    path = path .. "&year_from=" .. from .. "&year_to=" .. (from + math.random(0, 10))
  elseif filter == 4 then
    local from = math.random(10, 80) / 10
    path = path .. "&rating_from=" .. from
  elseif filter == 5 then
    path = path .. "&type=" .. (math.random(1, 2) == 1 and "movie" or "tv_show")
  elseif filter == 6 then
    path = path .. "&access=" .. (math.random(1, 2) == 1 and "free" or "subscription")
  elseif filter == 7 then
    local from = math.random(1950, 2015)
    path = path .. "&genre=" .. genres[math.random(1, #genres)] .. "&year_from=" .. from
  end
  return path
end

function request()
  local path
  if mode == "search" then
    path = "/search/films?facets=none&query=" .. urlencode(words[math.random(1, #words)]) .. "&page_size=" .. page_size
  elseif mode == "facets" then
    path = "/search/films?query=" .. urlencode(words[math.random(1, #words)]) .. "&page_size=1&facets=genre"
  elseif mode == "list" then
    path = "/search/films?facets=none&sort=-imdb_rating&page_size=" .. page_size .. "&page_number=" .. math.random(1, pages)
  else
    path = list_mix()
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"script":"search_api_%s","requests":%d,"duration_s":%.2f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    mode, summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
