// The avatar's 3D model in the browser: the GLB of /studio/avatars/<id>/model.glb with
// three.js (vendored, pinned: static/vendor/README.md), its idle or talk animation.
import * as THREE from "./vendor/three-0.170.0.module.min.js";
import { GLTFLoader } from "./vendor/three-0.170.0-GLTFLoader.js";

const canvas = document.getElementById("viewer");
const status = document.getElementById("viewer-status");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, alpha: true });
renderer.setSize(canvas.width, canvas.height, false);
const scene = new THREE.Scene();
scene.add(new THREE.AmbientLight(0xffffff, 2.2));
const light = new THREE.DirectionalLight(0xffffff, 0.8);
light.position.set(0.3, 0.5, 1);
scene.add(light);
const camera = new THREE.PerspectiveCamera(25, canvas.width / canvas.height, 0.01, 10);
camera.position.set(0, -0.02, 0.55);
const clock = new THREE.Clock();
let mixer = null;
let clips = [];
let model = null;

function play(name) {
  const clip = clips.find((c) => c.name === name);
  if (!mixer || !clip) return;
  mixer.stopAllAction();
  mixer.clipAction(clip).play();
  status.textContent = `Playing: ${name}`;
  canvas.dataset.playing = name;
}

new GLTFLoader().load(
  canvas.dataset.model,
  (gltf) => {
    model = gltf.scene;
    scene.add(model);
    mixer = new THREE.AnimationMixer(model);
    clips = gltf.animations;
    const mesh = model.getObjectByProperty("type", "Mesh");
    canvas.dataset.morphTargets = mesh ? Object.keys(mesh.morphTargetDictionary || {}).length : 0;
    canvas.dataset.animations = clips.map((c) => c.name).join(",");
    canvas.dataset.loaded = "yes";
    play("talk");
  },
  undefined,
  (error) => {
    status.textContent = `The model could not be loaded (${error.message || error}).`;
    canvas.dataset.loaded = "error";
  },
);

document.querySelectorAll("[data-animation]").forEach((button) => {
  button.addEventListener("click", () => play(button.dataset.animation));
});

function frame() {
  const t = clock.getDelta();
  if (mixer) mixer.update(t);
  if (model) model.rotation.y = 0.2 * Math.sin(clock.elapsedTime * 0.5);  // within +-12 degrees
  renderer.render(scene, camera);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
