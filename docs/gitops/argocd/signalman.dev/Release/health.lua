-- Argo CD health check for signalman.dev/Release.
-- Maps the release phase (and its kstatus conditions) to an Argo CD health:
--   Succeeded                          -> Healthy
--   Pending, Progressing                -> Progressing
--   Verifying (spec.verify)             -> Progressing (the promoted train is still watched)
--   AwaitingWindow, AwaitingGates       -> Progressing (a go/no-go wait, not a failure)
--   Paused (spec.paused), Held (a hold) -> Suspended
--   RollingBack, RolledBack, Failed     -> Degraded (also a manual rollback: spec.rollback)
--   Pending refused (Stalled=True)      -> Degraded
--   Progressing, a service waiting for a person (Stalled=True):
--     its Deployment paused (DeploymentPaused) -> Suspended
--     its Deployment's rollout failed          -> Degraded
-- A status that describes an older generation is Progressing: the controller
-- has not looked at the latest spec yet.
local hs = {}

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function say(default)
  if obj.status ~= nil and obj.status.message ~= nil and obj.status.message ~= "" then
    return obj.status.message
  end
  return default
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Signalman to pick up the release"
  return hs
end

local status = obj.status
local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Signalman to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local stalled = condition(status, "Stalled")

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = say("Every service promoted")
elseif phase == "Paused" or phase == "Held" then
  hs.status = "Suspended"
  if status.hold ~= nil then
    local id = tostring(status.hold.id)
    if status.hold.message ~= nil and status.hold.message ~= "" then
      -- The controller's message already says how to resume.
      hs.message = "Held (" .. id .. "): " .. status.hold.message
    else
      hs.message = "Held (" .. id .. "): " .. tostring(status.hold.reason) ..
        ". Set spec.resumeHold to " .. id .. " to resume, or spec.abort to roll back."
    end
  else
    hs.message = say("Paused by spec.paused")
  end
elseif phase == "Failed" then
  -- status.message says what a person must finish by hand: keep it whole,
  -- and add the cause of the rollback when there was one.
  hs.status = "Degraded"
  hs.message = "Failed: " .. say("the release failed")
  if status.rollback ~= nil and status.rollback.message ~= nil then
    hs.message = hs.message .. " (rolled back because " .. status.rollback.message .. ")"
  end
elseif phase == "RollingBack" or phase == "RolledBack" then
  hs.status = "Degraded"
  if status.rollback ~= nil and status.rollback.message ~= nil then
    hs.message = phase .. ": " .. status.rollback.message
  else
    hs.message = say(phase)
  end
elseif phase == "Pending" and stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or say("The release was refused")
elseif phase == "Progressing" and stalled ~= nil and stalled.status == "True" then
  -- A service waits for a person to fix its Deployment; the message says how.
  if stalled.reason == "DeploymentPaused" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = say(stalled.message or phase)
elseif phase == "Verifying" then
  -- Every service is promoted; a breach still reverses the whole train.
  hs.status = "Progressing"
  hs.message = say("Verifying the promoted train")
elseif phase == "AwaitingWindow" or phase == "AwaitingGates" then
  -- Waiting for the window, a gate or an approval: the message says which and the command.
  hs.status = "Progressing"
  hs.message = say(phase)
elseif phase == "Pending" and obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = say("Paused by spec.paused before it started")
else
  -- Pending (valid), Progressing, and any phase added later.
  hs.status = "Progressing"
  hs.message = say(phase)
end
return hs
