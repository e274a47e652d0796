-- The shop mix's reads for wrk (loadtests/workloads/shop.py without the
-- orders): 8 product pages : 3 category lists : 1 user profile.
-- wrk costs a fraction of Locust's CPU per request, so on a machine the app
-- shares, the app gets the cores. LAB_SEED_ROWS: products in the database.
local products = tonumber(os.getenv("LAB_SEED_ROWS") or "10000")
local users = math.max(math.floor(products / 10), 10)
local categories = {"books", "garden", "kitchen", "toys", "audio", "sports", "tools", "office"}

-- setup() runs in the main state; init() in each thread's own: hand each
-- thread a different seed so they do not request the same sequence.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_seed", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + (thread_seed or 0))
end

request = function()
  local pick = math.random(12)
  local path
  if pick <= 8 then
    path = "/products/" .. math.random(products)
  elseif pick <= 11 then
    path = "/products?category=" .. categories[math.random(#categories)]
      .. "&after_id=" .. math.random(0, products - 100) .. "&limit=20"
  else
    path = "/users/" .. math.random(users)
  end
  return wrk.format("GET", path)
end
